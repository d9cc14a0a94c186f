"""The metric classes' API: options validated by each class's pydantic Spec when it is
built (as the evaluator builds it), the options shown by ``ocf plugins show``, and the
deprecated names of ocf 0.1 (case twins, ``ocf.generation_metrics``)."""

from __future__ import annotations

import importlib
import sys
import warnings

import pytest
import torch
from pydantic import BaseModel

from ocf import metrics as M
from ocf import plugins
from ocf.cli import main
from ocf.errors import SpecError, UserError

REGISTRY = plugins.default().registry


def _build(name: str, **options):
    """A metric as the evaluator builds it: ``from_spec(resolved, **eval.metric_options.<name>)``."""
    return REGISTRY.get("metric", name).from_spec(None, **options)


def test_every_registered_metric_has_a_strict_described_spec():
    names = [e.name for e in REGISTRY.entries() if e.kind == "metric"]
    assert {"fg_ari", "fg_ari_multi", "miou", "kid", "setcon.retrieval", "genesis.attention_fg_ari"} <= set(names)
    for name in names:
        cls = REGISTRY.get("metric", name)
        assert cls.name == name
        assert issubclass(cls.Spec, BaseModel) and cls.Spec.model_config.get("extra") == "forbid", name
        for field, info in cls.Spec.model_fields.items():
            assert info.description, f"{name}.{field} has no description"


def test_options_are_validated_and_read_back():
    assert _build("fg_ari_multi", min_objects=3).options.min_objects == 3
    assert _build("mbo", background=True).options.background is True
    kid = _build("kid", subset_size=8, subsets=5)
    assert (kid.inner.subset_size, kid.inner.subsets) == (8, 5)
    assert M.Ari(sync_on_compute=False).sync_on_compute is False  # torchmetrics' own options pass through


@pytest.mark.parametrize(
    "name, options, message",
    [
        (
            "fg_ari_multi",
            {"min_objects": 0},
            "metric fg_ari_multi, option min_objects: Input should be greater than or equal to 1, got 0",
        ),
        ("fg_ari", {"video": "frames"}, "metric fg_ari, option video: Input should be 'clip' or 'frame'"),
        (
            "fg_ari",
            {"min_object": 2},
            "metric fg_ari, option min_object: unknown option; options are masks, video, min_objects",
        ),
        (
            "miou",
            {"backgrond": True},
            "metric miou, option backgrond: unknown option; options are masks, video, min_objects, background",
        ),
        (
            "genesis.attention_fg_ari",
            {"masks": "decoder"},
            "metric genesis.attention_fg_ari, option masks: Input should be 'grouper'",
        ),
        ("mbo", {"background": "maybe"}, "metric mbo, option background: Input should be a valid boolean"),
        ("kid", {"subset_size": 0}, "metric kid, option subset_size: Input should be greater than or equal to 1"),
        ("fid", {"feature": "vgg"}, "metric fid, option feature: Input should be 'random', 'torchscript' or "),
        ("relation_accuracy", {"rule": "diagonal"}, "metric relation_accuracy, option rule:"),
        ("setcon.retrieval", {"k": 5}, "metric setcon.retrieval, option k: unknown option"),
    ],
)
def test_bad_options_raise_a_spec_error_naming_metric_and_option(name, options, message):
    with pytest.raises(SpecError) as info:
        _build(name, **options)
    assert isinstance(info.value, UserError)
    assert str(info.value).startswith(message)


def test_plugins_show_lists_a_metrics_options(capsys):
    assert main(["plugins", "show", "fg_ari_multi"]) == 0
    out = capsys.readouterr().out
    assert "min_objects" in out and ">= 1" in out and "the fewest ground-truth objects" in out
    assert main(["plugins", "show", "kid"]) == 0
    out = capsys.readouterr().out
    assert "subset_size" in out and "feature" in out


def _ari_inputs():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 4, (4, 50), generator=g), torch.randint(-1, 4, (4, 50), generator=g)


@pytest.mark.parametrize(
    "old, replacement",
    [("ARI", "FgAri"), ("MBO", "Mbo"), ("MIoU", "Miou"), ("MSE", "Mse"), ("CountAccuracyMetric", "CountAccuracy")],
)
def test_case_twin_names_warn_and_name_the_replacement(old, replacement):
    with pytest.warns(DeprecationWarning, match=f"ocf.metrics.{old} is deprecated.*use ocf.metrics.{replacement}"):
        getattr(M, old)
    with pytest.warns(DeprecationWarning):
        exec(f"from ocf.metrics import {old}", {})
    with pytest.raises(AttributeError):
        M.NoSuchMetric  # noqa: B018


def test_deprecated_classes_keep_their_tensor_update():
    pred, true = _ari_inputs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old_fg, old_all, old_mbo, old_miou = M.ARI(), M.ARI(foreground_only=False), M.MBO(), M.MIoU(background=True)
    for metric, fn in ((old_fg, M.fg_ari), (old_all, M.ari)):
        metric.update(pred, true)
        assert metric.compute().item() == pytest.approx(fn(pred, true).nanmean().item(), abs=1e-12)
    old_mbo.update(pred, true)
    assert old_mbo.compute().item() == pytest.approx(M.best_overlap(pred, true).nanmean().item(), abs=1e-12)
    old_miou.update(pred, true)
    expect = M.miou(pred, true, background=True).nanmean().item()
    assert old_miou.compute().item() == pytest.approx(expect, abs=1e-12)


def test_generation_metrics_module_warns_and_reexports():
    sys.modules.pop("ocf.generation_metrics", None)
    with pytest.warns(DeprecationWarning, match="import from ocf.metrics instead"):
        module = importlib.import_module("ocf.generation_metrics")
    assert module.Fid is M.Fid and module.Kid is M.Kid and module.GenerativeMetric is M.GenerativeMetric
    assert module.GENERATION_METRICS == {"fid": M.Fid, "kid": M.Kid} and module.make_extractor is M.make_extractor
