"""`ocf eval --metrics/--data` and `ocf predict` on a tiny run trained here: scores of any
registered metric without retraining, compatible and incompatible files, per-item PNG label
maps and overlays, predictions.h5, and bad input (exit 2, nothing half-written)."""

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from ocf import plugins
from ocf.cli import main
from ocf.data import H5Dataset, make_dataset
from ocf.run import train
from ocf.spec import resolve

REGISTRY = plugins.default().registry


def tiny_spec(data_path: Path) -> dict:
    return {
        "name": "tiny",
        "data": {
            "dataset": "shapes",
            "path": str(data_path),
            "resolution": [16, 16],
            "channels": 3,
            "generate": {"n": 48, "seed": 0, "options": {"resolution": 16}},
        },
        "model": {
            "encoder": {"type": "cnn", "channels": [8, 8]},
            "grouper": {"type": "slot_attention.grouper", "num_slots": 3, "slot_dim": 16, "mlp_hidden": 16},
            "decoder": {"type": "spatial_broadcast", "channels": [8, 8]},
            "objectives": [{"type": "mse"}],
        },
        "train": {"steps": 3, "batch_size": 8, "log_every": 1, "image_every": 0, "checkpoint_every": 3},
        "eval": {"metrics": ["mse"], "batch_size": 4},
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    return train.run(resolve(tiny_spec(root / "shapes16.h5"), REGISTRY), out=str(root / "run"), progress=False)


def _eval(run, *args, capsys):
    code = main(["eval", str(run), "--json", *args])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


def _fg_ari(pred: np.ndarray, true: np.ndarray) -> float:
    """Adjusted Rand index of the foreground pixels (true > 0), from the pair-counting formula
    (1 when both partitions are trivially equal, e.g. one object predicted as one segment)."""
    fg = true > 0
    a, b = true[fg], pred[fg]
    table = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(table, (a, b), 1)

    def pairs(x):
        return (x * (x - 1) / 2).sum()

    index, rows, cols, total = pairs(table), pairs(table.sum(1)), pairs(table.sum(0)), pairs(np.array(fg.sum()))
    expected = rows * cols / total
    if (rows + cols) / 2 == expected:
        return 1.0
    return float((index - expected) / ((rows + cols) / 2 - expected))


def test_eval_scores_any_metric_and_merges_the_record(run, capsys):
    code, record, _ = _eval(run, "--metrics", "ari,mbo", capsys=capsys)
    assert code == 0 and set(record["metrics"]) == {"ari", "mbo"}
    assert 0 <= record["metrics"]["mbo"] <= 1 and record["data"].endswith("shapes16.h5") and record["split"] == "test"
    code, record, _ = _eval(run, "--metrics", "fg_ari", capsys=capsys)
    saved = json.loads((run / "eval_test.json").read_text())
    assert set(saved["metrics"]) == {"ari", "mbo", "fg_ari"}  # earlier scores of the same checkpoint and file kept
    assert saved["metrics"]["fg_ari"] == record["metrics"]["fg_ari"]


def test_eval_fg_ari_matches_the_labels_predict_writes(run, tmp_path, capsys):
    """The fg_ari `ocf eval --metrics` reports equals the mean foreground ARI of the label
    maps `ocf predict` writes for the same split (same seed, same batches), computed here."""
    code, record, _ = _eval(run, "--metrics", "fg_ari", "--split", "test", capsys=capsys)
    assert (
        main(
            ["predict", str(run), str(run.parent / "shapes16.h5"), "--split", "test", "--out", str(tmp_path), "--quiet"]
        )
        == 0
    )
    truth = H5Dataset(run.parent / "shapes16.h5", split="test")
    true = np.stack([truth[i]["masks"][0].numpy() for i in range(len(truth))])
    with h5py.File(tmp_path / "predictions.h5") as f:
        labels = f["labels"][:, 0]
        assert [n.decode() for n in f["names"][:]] == [f"item_{i:06d}" for i in truth.indices]
    expected = np.mean([_fg_ari(p, t) for p, t in zip(labels, true)])
    assert record["metrics"]["fg_ari"] == pytest.approx(expected, abs=1e-5)


def test_eval_on_another_compatible_file(run, tmp_path, capsys):
    other = make_dataset(REGISTRY, "shapes", tmp_path / "other.h5", n=12, seed=5, options={"resolution": 16})
    code, record, _ = _eval(run, "--metrics", "mse", "--data", str(other), "--split", "all", capsys=capsys)
    assert code == 0 and record["data"] == str(other) and record["split"] == "all"
    assert (run / "eval_other_all.json").exists() and 0 <= record["metrics"]["mse"] < 1


def test_eval_refuses_bad_metrics_and_incompatible_files(run, tmp_path, capsys):
    code, _, err = _eval(run, "--metrics", "fg_arii", capsys=capsys)
    assert code == 2 and "unknown metric 'fg_arii'; did you mean fg_ari" in err
    code, _, err = _eval(run, "--metrics", "mbo", "--metric-option", "kid.subset_size=10", capsys=capsys)
    assert code == 2 and "'kid', which is not scored" in err
    big = make_dataset(REGISTRY, "shapes", tmp_path / "big.h5", n=4, seed=0, options={"resolution": 32})
    code, _, err = _eval(run, "--metrics", "mse", "--data", str(big), "--split", "all", capsys=capsys)
    assert code == 2 and "does not fit the run" in err and "[16, 16]" in err and "32x32" in err
    grey = make_dataset(REGISTRY, "nshapes", tmp_path / "grey.h5", n=4, seed=0, options={"resolution": 16})
    code, _, err = _eval(run, "--metrics", "mse", "--data", str(grey), "--split", "all", capsys=capsys)
    assert code == 2 and "data.channels is 3" in err and "1-channel" in err
    code, _, err = _eval(run, "--data", str(tmp_path / "missing.h5"), capsys=capsys)
    assert code == 2 and "does not exist" in err
    assert not (run / "eval_big_all.json").exists()


def _images(folder: Path, frames: np.ndarray) -> None:
    """Three images, 24x32 (h x w), named so that natural order differs from text order."""
    folder.mkdir()
    for name, i in (("img_10", 0), ("img_2", 1)):
        Image.fromarray(frames[i]).save(folder / f"{name}.png")
    Image.fromarray(frames[2]).convert("RGBA").save(folder / "img_3.png")  # alpha is dropped


def test_predict_a_folder_of_images(run, tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 24, 32, 3), dtype=np.uint8)
    _images(tmp_path / "in", frames)
    assert main(["predict", str(run), str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    out = tmp_path / "out"
    with h5py.File(out / "predictions.h5") as f:
        assert [n.decode() for n in f["names"][:]] == ["img_2", "img_3", "img_10"]
        assert f["frames"].shape == (3, 1, 16, 16, 3) and f["frames"].attrs["axes"] == "n t h w c"
        assert f["masks"].shape == (3, 1, 3, 16, 16) and np.allclose(f["masks"][:].sum(2), 1, atol=1e-5)
        assert f["slots"].shape == (3, 3, 16) and f["recon"].shape == (3, 1, 16, 16, 3)
        labels, masks, seen = f["labels"][:], f["masks"][:], f["frames"][:]
        assert json.loads(f.attrs["metadata"])["items"] == 3
    assert np.array_equal(labels, masks.argmax(2))
    # the resize rule: the centred 24x24 box, then bilinear to 16x16 (Pillow, channel by channel)
    box = frames[1][:, 4:28]
    want = np.stack([np.asarray(Image.fromarray(box[..., c]).resize((16, 16), Image.BILINEAR)) for c in range(3)], -1)
    assert np.array_equal(seen[0, 0], want)
    for i, name in enumerate(["img_2", "img_3", "img_10"]):
        png = np.asarray(Image.open(out / "masks" / f"{name}.png"))
        assert png.dtype == np.uint8 and np.array_equal(png, labels[i, 0])
        assert np.asarray(Image.open(out / "overlays" / f"{name}.png")).shape == (16, 16, 3)
    assert not list(out.glob(".*tmp*"))


def test_predict_refuses_bad_input_and_writes_nothing(run, tmp_path, capsys):
    out = tmp_path / "out"
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    assert main(["predict", str(run), str(tmp_path / "empty"), "--out", str(out)]) == 2
    assert "no images (looked for *.png, *.jpg, *.jpeg)" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(bad / "a.jpg")
    (bad / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    assert main(["predict", str(run), str(bad), "--out", str(out)]) == 2
    assert f"{bad / 'b.png'}: cannot read image" in capsys.readouterr().err
    grey = tmp_path / "grey"
    grey.mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(grey / "g.png")
    assert main(["predict", str(run), str(grey), "--out", str(out)]) == 2
    assert "a greyscale image (1 channel), but the run takes 3-channel frames" in capsys.readouterr().err
    late = tmp_path / "late"  # a bad image in a later batch (eval.batch_size 4) is found before any output
    late.mkdir()
    for i in range(5):
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(late / f"c_{i}.png")
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(late / "c_9.png")
    assert main(["predict", str(run), str(late), "--out", str(out)]) == 2
    assert f"{late / 'c_9.png'}: a greyscale image" in capsys.readouterr().err
    assert not out.exists()
    big = make_dataset(REGISTRY, "shapes", tmp_path / "big.h5", n=4, seed=0, options={"resolution": 32})
    assert main(["predict", str(run), str(big), "--out", str(out)]) == 2
    assert "does not fit the run" in capsys.readouterr().err
    assert main(["predict", str(run), str(tmp_path / "nothing"), "--out", str(out)]) == 2
    assert "no such folder or file" in capsys.readouterr().err
    assert not (out / "predictions.h5").exists() and not list(out.glob(".*tmp*"))
