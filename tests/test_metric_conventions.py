"""Metric conventions are options of the metric (which masks, whole clip or frame by frame,
which items count) and every metric states its convention in words; ARI's pair counts are
exact on items of 10^5 pixels and more, where float32 counts give the wrong sign."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from ocf import metrics as M
from ocf import plugins
from ocf.records import Batch, Latents, Rendering, State


def _float32_ari(pred: torch.Tensor, true: torch.Tensor) -> float:
    """The pair-counting ARI formula with float32 counts, as a float32 implementation has it."""
    m = int(true.max()) + 1
    table = torch.bincount(pred * m + true, minlength=(int(pred.max()) + 1) * m).view(-1, m).float()
    n, s = table.sum(), table.square().sum()
    a, b = table.sum(0).square().sum(), table.sum(1).square().sum()
    tp, fp, fn = s - n, b - s, a - s
    tn = n * n - fp - fn - s
    return float(2 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)))


def test_ari_pair_counts_are_exact_where_float32_gets_the_sign_wrong():
    """A 200,000-pixel item (a short video clip): two true clusters (100 and 199,900
    pixels), the prediction one cluster but for 10 pixels.  The true ARI is −9.1e−5; float32
    counts say +4.4e−6."""
    n = 200_000
    true = torch.ones(n, dtype=torch.long)
    true[100:] = 2  # foreground ids 1 and 2, no background
    pred = torch.zeros(n, dtype=torch.long)
    pred[-10:] = 1
    exact = adjusted_rand_score(true.numpy(), pred.numpy())
    assert exact < -5e-5
    assert abs(_float32_ari(pred, true) - exact) > 5e-5  # the case is one float32 counts get wrong
    for score in (M.ari, M.fg_ari):
        value = float(score(pred[None], true[None])[0])
        assert value == pytest.approx(exact, rel=1e-9, abs=0)


def _video_state() -> State:
    """Two clips of two 2×2 frames.  The decoder puts everything in one slot; the grouper
    splits objects 1 and 2 perfectly.  Clip 0 holds objects 1 and 2 in frame 0 and only
    object 1 in frame 1; clip 1 holds object 1 alone in both frames."""
    true = torch.tensor([[[[1, 1], [2, 2]], [[1, 1], [0, 0]]], [[[1, 1], [0, 0]], [[0, 1], [1, 0]]]])  # [b t h w]
    b, t = true.shape[:2]
    one_slot = torch.zeros(b, t, 2, 2, 2)
    one_slot[:, :, 0] = 5.0
    perfect = torch.nn.functional.one_hot(true, 3).permute(0, 1, 4, 2, 3).float() * 5.0  # [b t 3 h w]
    return State(
        batch=Batch(frames=torch.rand(b, t, 3, 2, 2), masks=true),
        latents=Latents(masks=perfect.softmax(dim=2)),
        rendering=Rendering(mask_logits=one_slot),
    )


def _score(metric: M.EvalMetric, state: State) -> float:
    metric.update_state(state)
    return float(metric.compute())


def test_masks_option_picks_the_decoders_or_the_groupers_masks():
    state = _video_state()
    # decoder: one slot everywhere → clip 0 (two objects) 0, clip 1 (one object) 1
    assert _score(M.FgAri(), state) == pytest.approx(0.5)
    assert _score(M.FgAri(masks="decoder"), state) == pytest.approx(0.5)
    assert _score(M.FgAri(masks="grouper"), state) == pytest.approx(1.0)
    genesis = plugins.default().registry.get("metric", "genesis.attention_fg_ari")()
    assert _score(genesis, state) == pytest.approx(1.0)
    no_grouper = State(batch=state.batch, rendering=state.rendering)
    with pytest.raises(M.MetricUnavailable, match="masks: grouper"):
        M.FgAri(masks="grouper").update_state(no_grouper)
    no_decoder = State(batch=state.batch, latents=state.latents)
    with pytest.raises(M.MetricUnavailable, match="masks: decoder"):
        M.FgAri(masks="decoder").update_state(no_decoder)
    auto = M.FgAri()
    auto.update_state(no_decoder)
    assert auto.source == "grouper" and "(here: the grouper's)" in auto.convention()


def test_video_option_scores_whole_clips_or_frames():
    """With the decoder's one-slot masks: per clip, clip 0 has two objects (0) and clip 1 one
    (1) → 0.5.  Per frame, clip 0's frames score 0 and 1 (mean 0.5), clip 1's 1 and 1 → 0.75."""
    state = _video_state()
    assert _score(M.FgAri(video="clip"), state) == pytest.approx(0.5)
    assert _score(M.FgAri(video="frame"), state) == pytest.approx(0.75)
    # only frames with two objects count: clip 0's frame 0 (0); clip 1 has none and is skipped
    frames_multi = M.FgAri(video="frame", min_objects=2)
    assert _score(frames_multi, state) == pytest.approx(0.0)
    assert int(frames_multi.count) == 1 and int(frames_multi.skipped) == 1


def test_min_objects_option_and_the_fg_ari_multi_alias_agree():
    state = _video_state()
    assert _score(M.FgAri(min_objects=2), state) == pytest.approx(0.0)
    assert _score(M.FgAriMulti(), state) == pytest.approx(0.0)
    assert M.FgAriMulti().options.min_objects == 2


def test_every_metric_states_its_convention():
    fg = M.FgAri().convention()
    assert fg.startswith("FG-ARI, background (id 0) and ignored (-1) pixels excluded")
    assert "the decoder's masks where it renders every pixel, else the grouper's" in fg
    assert "over the whole clip" in fg and "single-object ones included" in fg
    frame = M.FgAri(video="frame", masks="grouper", min_objects=2).convention()
    assert "the grouper's masks" in frame and "frame by frame" in frame
    assert "only frames with at least 2 objects count" in frame
    assert "background (id 0) included" in M.Ari().convention()
    assert "scored as one more object" in M.Mbo(background=True).convention()
    registry = plugins.default().registry
    options = {"relation_accuracy": {"rule": "same_color"}}  # its default rule comes from the spec's data
    for entry in registry.entries("metric"):
        text = entry.obj.from_spec(None, **options.get(entry.name, {})).convention()
        assert isinstance(text, str) and len(text) > 20 and "``" not in text, entry.name


def test_ocf_eval_prints_and_records_conventions(tmp_path, capsys):
    """``ocf eval`` names each metric's convention in its table and its JSON record."""
    from repro_tiny import tiny_spec

    from ocf.cli import main

    spec = tiny_spec(tmp_path)
    run = tmp_path / "run"
    assert main(["train", str(spec), "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["eval", str(run)]) == 0
    out = capsys.readouterr().out
    assert "fg_ari: FG-ARI, background (id 0)" in out
    assert main(["eval", str(run), "--json"]) == 0
    import json

    record = json.loads(capsys.readouterr().out)
    assert set(record["conventions"]) == set(record["metrics"])
    assert "(here: the decoder's)" in record["conventions"]["fg_ari"]
    assert not math.isnan(record["metrics"]["fg_ari"])
    assert np.isfinite(record["metrics"]["mse"])
