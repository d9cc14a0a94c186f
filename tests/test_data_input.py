"""Hostile and malformed dataset files: mask ids out of range, huge ids, files declaring items
they never stored, empty clips, splits too large for memory; ARI in float64 on video-sized
items; and the messages that name the file (batch larger than the split, the resolved
data.path)."""

import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from ocf.cli import main
from ocf.data import H5Dataset, StepBatches, describe, guards, read_info
from ocf.data import format as fmt
from ocf.data.check import check
from ocf.errors import DataError, UserError
from ocf.metrics import FgAriMulti, ari, fg_ari, object_counts
from ocf.records import Batch, Rendering, State

ROOT = Path(__file__).resolve().parents[1]
INT32_MAX = 2**31 - 1


def _write(path, masks, metadata=None, n=8):
    """A tiny ocf file: ``n`` 8x8 RGB images, the given masks, splits train 0..5, test 6..7."""
    frames = np.full((n, 1, 8, 8, 3), 100, np.uint8)
    splits = {"train": np.arange(6), "test": np.array([6, 7])}
    return fmt.write_dataset(path, frames, masks, metadata=metadata or {}, splits=splits)


def _masks(dtype=np.int32, n=8):
    m = np.zeros((n, 1, 8, 8), dtype)
    m[:, 0, :4, :4] = 1
    m[:, 0, 4:, 4:] = 2
    return m


# ------------------------------------------------------------------------ ids out of range


@pytest.mark.parametrize("in_memory", [True, False])
def test_ids_below_minus_one_are_refused_naming_file_split_item_and_value(tmp_path, in_memory):
    masks = _masks()
    masks[7, 0, 0, 0] = -5
    path = _write(tmp_path / "neg.h5", masks)
    assert len(H5Dataset(path, "train", in_memory=in_memory)) == 6  # the bad item is not in train
    with pytest.raises(DataError) as err:
        ds = H5Dataset(path, "test", in_memory=in_memory)
        ds.get_batch([0, 1])  # lazy datasets check each item as it is read
    msg = str(err.value)
    assert str(path) in msg and "split 'test'" in msg and "item 7" in msg and "mask id -5 is below -1" in msg


@pytest.mark.parametrize(("dtype", "value"), [(np.uint32, 2**32 - 1), (np.uint64, 2**64 - 1), (np.int64, 2**40)])
def test_huge_and_unsigned_ids_are_refused(tmp_path, dtype, value):
    masks = _masks(dtype)
    masks[2, 0, 7, 7] = value
    path = _write(tmp_path / "huge.h5", masks)
    with pytest.raises(DataError, match=rf"split 'train', item 2: mask id {value} is above {INT32_MAX}"):
        H5Dataset(path, "train")
    card = check(path)
    assert any(p.startswith(f"item 2: mask id {value} is above") for p in card["problems"]), card["problems"]


def test_a_declared_max_id_bounds_the_ids(tmp_path):
    masks = _masks()
    ok = _write(tmp_path / "ok.h5", masks, metadata={"max_id": 2})
    assert read_info(ok).max_id == 2 and len(H5Dataset(ok, "train")) == 6
    masks[4, 0, 0, 0] = 3
    bad = _write(tmp_path / "bad.h5", masks, metadata={"max_id": 2})
    with pytest.raises(DataError, match=r"item 4: mask id 3 is above 2, the largest object id allowed \(the file's"):
        H5Dataset(bad, "train")
    assert check(bad)["problems"] == [
        "item 4: mask id 3 is above 2, the largest object id allowed (the file's metadata max_id)"
    ]
    assert read_info(_write(tmp_path / "none.h5", _masks())).max_id == INT32_MAX
    for declared in (-1, "7", 1.5, 2**40, True):
        path = _write(tmp_path / "declared.h5", _masks(), metadata={"max_id": declared})
        with pytest.raises(DataError, match="metadata 'max_id' must be an integer"):
            read_info(path)


def test_check_reports_ids_below_minus_one_per_chunk_with_the_item(tmp_path):
    masks = _masks()
    masks[5, 0, 3, 3] = -2
    card = check(_write(tmp_path / "neg.h5", masks))
    assert card["problems"] == [
        "item 5: mask id -2 is below -1 (-1 is the only ignore label; 0 is background, objects are 1..2147483647)"
    ]


def test_inspect_shows_the_problem_without_refusing(tmp_path, capsys):
    masks = _masks()
    masks[1, 0, 0, 0] = -9
    path = _write(tmp_path / "neg.h5", masks)
    assert main(["data", "inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "problem     mask id -9 is below -1" in out and "with -1 (ignore)" not in out


# ------------------------------------------------------------------------ very large ids


def _run_limited(code: str, extra_bytes: int = 1 << 30) -> subprocess.CompletedProcess:
    """Run ``code`` after imports in a process whose address space may grow by only
    ``extra_bytes``: an allocation sized by an id's value (GBs for int32 max) fails there."""
    prelude = textwrap.dedent(
        """
        import resource
        import numpy as np, torch
        from ocf.data import describe
        from ocf.data.check import check
        from ocf.metrics import object_counts, FgAriMulti
        size = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1]) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size + EXTRA, size + EXTRA))
        """
    ).replace("EXTRA", str(extra_bytes))
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )


def test_int32_max_ids_do_not_exhaust_memory_in_inspect_check_and_fg_ari_multi(tmp_path):
    masks = _masks()
    masks[:, 0, 0, :4] = INT32_MAX  # a third object with the largest allowed id
    path = _write(tmp_path / "big.h5", masks)
    summary = describe(path)
    assert summary["masks"]["max_id"] == INT32_MAX and "problem" not in summary["masks"]
    assert summary["masks"]["objects_per_sample"]["histogram"] == {3: 8}
    assert check(path)["objects_histogram"] == {"3": 8} and check(path)["problems"] == []
    result = _run_limited(
        f"""
        s = describe({str(path)!r})
        c = check({str(path)!r})
        true = torch.tensor([[0, 1, {INT32_MAX}, {INT32_MAX}], [0, 2, 2, 2]] * 4)
        print(s["masks"]["objects_per_sample"]["max"], c["objects_histogram"], object_counts(true).tolist())
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[0] == "3 {'3': 8} [2, 1, 2, 1, 2, 1, 2, 1]"


def test_fg_ari_multi_scores_int32_max_ids_as_their_relabelled_form():
    true = torch.tensor([[0, 1, 1, 5, 5, 5], [0, 3, 3, 3, 3, 3]]).view(2, 1, 2, 3)
    logits = torch.randn(2, 1, 3, 2, 3, generator=torch.Generator().manual_seed(0))

    def score(labels):
        state = State(
            batch=Batch(frames=torch.rand(2, 1, 3, 2, 3), masks=labels), rendering=Rendering(mask_logits=logits)
        )
        metric = FgAriMulti()
        metric.update_state(state)
        return metric.compute().item(), int(metric.count)

    huge = true.masked_fill(true == 5, INT32_MAX)
    assert score(huge) == score(true)
    assert score(true)[1] == 1  # the single-object item is skipped
    assert object_counts(huge.reshape(2, -1)).tolist() == [2, 1]


# ------------------------------------------------------------------------ sparse and empty files


def test_a_sparse_file_declaring_a_billion_items_is_refused_quickly(tmp_path):
    path = tmp_path / "sparse.h5"
    with h5py.File(path, "w") as f:
        f.attrs["ocf_format"] = 1
        f.create_dataset("frames", shape=(10**9, 1, 32, 32, 3), dtype=np.uint8, chunks=(1, 1, 32, 32, 3))
        f.create_dataset("masks", shape=(10**9, 1, 32, 32), dtype=np.int16, chunks=(1, 1, 32, 32))
    assert path.stat().st_size < 10_000
    start = time.perf_counter()
    for in_memory in (True, False):
        with pytest.raises(DataError) as err:
            H5Dataset(path, "train", in_memory=in_memory)
        assert str(path) in str(err.value) and "declares 1,000,000,000 items" in str(err.value)
        assert "stores 0 of its 1,000,000,000 chunks" in str(err.value)
    assert check(path)["problems"] == [str(err.value)]
    assert time.perf_counter() - start < 5


def test_a_partly_written_or_unallocated_dataset_is_refused(tmp_path):
    path = tmp_path / "partial.h5"
    with h5py.File(path, "w") as f:
        f.attrs["ocf_format"] = 1
        ds = f.create_dataset("frames", shape=(10, 1, 4, 4, 3), dtype=np.uint8, chunks=(1, 1, 4, 4, 3))
        ds[:4] = 7  # items 4..9 never written
    with pytest.raises(DataError, match=r"'frames' declares 10 items .* stores 4 of its 10 chunks"):
        read_info(path)
    with h5py.File(path, "w") as f:
        f.attrs["ocf_format"] = 1
        f.create_dataset("frames", data=np.ones((4, 1, 4, 4, 3), np.uint8))
        f.create_dataset("splits/train", shape=(10**8,), dtype=np.int64)  # contiguous, never written
    with pytest.raises(DataError, match=r"'splits/train' declares shape \[100000000\] but stores no data"):
        read_info(path)


def test_a_clip_of_zero_frames_is_refused_by_inspect_and_write(tmp_path, capsys):
    path = tmp_path / "t0.h5"
    with h5py.File(path, "w") as f:
        f.attrs["ocf_format"] = 1
        f.create_dataset("frames", shape=(4, 0, 8, 8, 3), dtype=np.uint8)
        f.create_dataset("masks", shape=(4, 0, 8, 8), dtype=np.int16)
    assert main(["data", "inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: 'frames' has shape [4 0 8 8 3] [N T H W C]: an axis of length 0" in err
    assert "Traceback" not in err
    with pytest.raises(DataError, match="without an empty axis"):
        fmt.write_dataset(tmp_path / "w.h5", np.zeros((4, 0, 8, 8, 3), np.uint8))


def test_a_split_larger_than_the_available_memory_is_refused_with_the_estimate(tmp_path, monkeypatch):
    path = _write(tmp_path / "ok.h5", _masks())
    monkeypatch.setattr(guards, "available_memory", lambda: 1000)
    per_item = 8 * 8 * 3 + 8 * 8 * 4  # uint8 frames + int32 masks
    assert H5Dataset(path, "train", in_memory=False)._item_bytes() == per_item
    with pytest.raises(DataError, match=r"split 'train' holds 6 items, .* set data.in_memory: false") as err:
        H5Dataset(path, "train", in_memory=True)
    assert str(path) in str(err.value)
    assert len(H5Dataset(path, "train", in_memory=False)) == 6


# ------------------------------------------------------------------------ messages naming the file


def test_batch_larger_than_the_split_names_the_file(tmp_path):
    ds = H5Dataset(_write(tmp_path / "small.h5", _masks()), "train")
    with pytest.raises(UserError) as err:
        StepBatches(len(ds), 64, 0, source=ds.source)
    assert str(err.value) == f"train.batch_size 64 is larger than the training split 'train' of {ds.path} (6 samples)"


def test_the_resolved_data_path_is_printed_once(tmp_path, monkeypatch, capsys):
    from ocf import plugins
    from ocf.run.data import ensure_dataset
    from ocf.spec import load

    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "here.h5", _masks())
    spec = load(ROOT / "configs/slot_attention/shapes_32.yaml", plugins.default().registry, ["data.path=here.h5"]).spec
    registry = plugins.default().registry
    assert ensure_dataset(spec, registry) == Path("here.h5")
    ensure_dataset(spec, registry)
    err = capsys.readouterr().err
    assert err.count(f"ocf: reading {tmp_path / 'here.h5'} (data.path here.h5, relative to the working folder)") == 1


# ------------------------------------------------------------------------ ARI precision


@pytest.mark.parametrize(("pred_labels", "true_labels"), [(6, 6), (1000, 3000)], ids=["dense", "sparse"])
def test_ari_pair_counts_are_float64_on_video_sized_items(pred_labels, true_labels):
    """A clip of 24 x 128 x 128 = 393,216 pixels: pair counts reach 1.5e11, beyond int32 and
    beyond float32's exact integers; the scores match sklearn's to 1e-12, with dense
    contingency tables and with the sparse count many labels take."""
    g = torch.Generator().manual_seed(0)
    n = 24 * 128 * 128
    true = torch.randint(0, true_labels, (2, n), generator=g)
    noise = torch.randint(0, pred_labels, (2, n), generator=g)
    pred = torch.where(torch.rand(2, n, generator=g) < 0.8, true % pred_labels, noise)
    scores, fg = ari(pred, true), fg_ari(pred, true)
    assert scores.dtype == torch.float64 and fg.dtype == torch.float64
    for i in range(2):
        assert scores[i].item() == pytest.approx(adjusted_rand_score(true[i], pred[i]), abs=1e-12)
        keep = true[i] > 0
        assert fg[i].item() == pytest.approx(adjusted_rand_score(true[i][keep], pred[i][keep]), abs=1e-12)


# ------------------------------------------------------------------------ small things a new user hit


def test_the_readme_error_example_is_what_ocf_prints(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    readme = (ROOT / "README.md").read_text()
    command, printed = re.search(r"\n\$ ocf (.+)\n(ocf: error: .+)\n```", readme).groups()
    assert main(command.split()) == 2
    assert capsys.readouterr().err.strip() == printed


def test_the_readme_tour_writes_nothing_into_the_repository_root():
    readme = (ROOT / "README.md").read_text()
    outs = re.findall(r"^ocf .*--out (\S+)", readme, flags=re.M)
    assert "data/shapes_32.png" in outs
    assert all(Path(out).parent != Path(".") for out in outs), outs


def test_plugins_listing_names_the_kind_of_each_name(capsys):
    assert main(["plugins"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("common "))
    assert re.search(r"objective: [^;]*\bmse\b", row) and re.search(r"metric: [^;]*\bmse\b", row)
    assert "encoder: cnn" in row


def test_data_make_prints_the_absolute_path(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["data", "make", "shapes", "--out", "rel/s.h5", "--n", "10", "--quiet"]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {tmp_path / 'rel' / 's.h5'}: shapes")


def test_the_licence_is_an_spdx_string_for_setuptools_77():
    """A TOML table licence makes setuptools >= 77 warn three times per install."""
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^license = "Apache-2.0"$', text, flags=re.M)
    assert re.search(r'^requires = \["setuptools>=77"\]$', text, flags=re.M)
