"""ocf data check: the dataset card and each inconsistency it must find."""

import argparse

import h5py
import numpy as np
import pytest

from ocf.cli.convert import add_check_parser
from ocf.data import format as fmt
from ocf.data.check import check, format_card


def _write(path, n=6, t=2, splits=None, visibility=None, masks=None):
    frames = np.zeros((n, t, 8, 8, 3), np.uint8)
    frames[:, :, 2:4, 2:4] = 200
    if masks is None:
        masks = np.zeros((n, t, 8, 8), np.int16)
        masks[:, :, 2:4, 2:4] = 1
        masks[: n // 2, :, 5:7, 5:7] = 2
    extras, axes = {}, {}
    if visibility is not None:
        extras["visibility"], axes["visibility"] = visibility, "n o"
    splits = splits if splits is not None else {"train": np.arange(4), "val": np.arange(4, n)}
    return fmt.write_dataset(
        path, frames, masks, extras=extras, splits=splits, axes=axes, metadata={"background_entities": ["floor"]}
    )


def test_card_of_a_consistent_file(tmp_path):
    vis = np.zeros((6, 2), bool)
    vis[:, 0], vis[:3, 1] = True, True
    card = check(_write(tmp_path / "ok.h5", visibility=vis))
    assert card["problems"] == []
    assert card["shape"] == [6, 2, 8, 8, 3] and card["splits"] == {"train": 4, "val": 2}
    assert card["objects_histogram"] == {"1": 3, "2": 3}
    assert card["background"]["entities"] == ["floor"]
    assert card["ranges"]["frames"]["min"] == 0 and card["ranges"]["frames"]["max"] == 200
    assert card["ranges"]["frames"]["mean"] == pytest.approx(200 * 4 / 64)  # 4 of 64 pixels at 200
    text = format_card(card)
    assert "no inconsistencies" in text and "1:3 2:3" in text


def test_finds_a_mask_id_without_pixels(tmp_path):
    vis = np.ones((6, 2), bool)  # object 2 (id 2) claimed visible in every item, but drawn only in items 0-2
    card = check(_write(tmp_path / "v.h5", visibility=vis))
    assert len(card["problems"]) == 3
    assert card["problems"][0].startswith("item 3: mask id 2 (visibility[1] set) has no pixels")


def test_finds_frames_and_masks_of_different_lengths(tmp_path):
    path = _write(tmp_path / "len.h5")
    with h5py.File(path, "a") as f:
        masks = f["masks"][:, :1]
        del f["masks"]
        f.create_dataset("masks", data=masks)  # T = 1 against the frames' T = 2
    card = check(path)
    assert card["problems"] == [f"{path}: frames and masks differ in length: frames N=6 T=2, masks N=6 T=1"]
    path = _write(tmp_path / "extra.h5")
    with h5py.File(path, "a") as f:
        f.create_dataset("counts", data=np.ones((6, 3), np.int16)).attrs["axes"] = "n t"
    assert "extra 'counts' (axes n t) has shape [6, 3], but the frames have N=6 T=2" in check(path)["problems"][0]


def test_finds_overlapping_splits_within_a_partition(tmp_path):
    splits = {
        "train": np.arange(0, 5),
        "test": np.arange(4, 6),
        "paper_train": np.arange(3),
        "paper_test": np.arange(3, 4),
        "clevr6": np.arange(6),
        "dup": np.array([1, 1]),
    }
    card = check(_write(tmp_path / "s.h5", splits=splits))
    assert card["problems"] == [
        "split 'dup' lists 1 item(s) more than once",
        "splits 'train' and 'test' overlap in 1 item(s) (e.g. [4])",
    ]


def test_check_handler_exit_codes(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_check_parser(parser.add_subparsers())
    good = _write(tmp_path / "good.h5")
    bad = _write(tmp_path / "bad.h5", splits={"train": np.arange(4), "val": np.arange(3, 6)})
    args = parser.parse_args(["check", str(good)])
    assert args.func(args) == 0
    args = parser.parse_args(["check", str(bad), "--json"])
    assert args.func(args) == 1
    assert "overlap" in capsys.readouterr().out
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    args = parser.parse_args(["check", str(tmp_path / "junk.h5")])
    assert args.func(args) == 1
    out = capsys.readouterr().out
    assert "junk.h5" in out and "1 inconsistency" in out


def test_check_of_a_missing_file_is_a_usage_error(tmp_path):
    from ocf.cli import main

    assert main(["data", "check", str(tmp_path / "absent.h5")]) == 2
