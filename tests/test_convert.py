"""ocf data convert on DeepMind's multi-object datasets: format-exact TFRecords written by the
tests (tests/convert_fixtures.py), re-read with ocf's loader; bad input; the CLI handlers; a
plugin converter; training on a converted file."""

import argparse
import gzip
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from convert_fixtures import (
    cater_record,
    clevr_record,
    deepmind_image_record,
    example,
    float_list,
    one_byte_entries,
    write_tfrecord,
)

from ocf.cli.convert import add_check_parser, add_convert_parser
from ocf.data import H5Dataset, read_info
from ocf.data.convert import Converter, Record, convert, converters, get_converter
from ocf.data.convert.tfrecord import iter_records
from ocf.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clevr_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    records = [clevr_record(rng, n) for n in (2, 7, 3, 5, 8, 1)]
    path = write_tfrecord(
        tmp_path_factory.mktemp("clevr") / "clevr_with_masks_train.tfrecords", [r[0] for r in records], "gzip"
    )
    return path, [r[1] for r in records]


def test_a_missing_optional_package_names_the_extra():
    from ocf.data.convert.tfrecord import require

    with pytest.raises(UserError, match=r"needs the optional package 'no_such_pkg'.*pip install 'ocf\[datasets\]'"):
        require("no_such_pkg.sub", "reading TFRecord files")


def test_tfrecord_reader_checks_framing_and_crc(tmp_path):
    path = write_tfrecord(tmp_path / "a.tfrecords", [b"one", b"two" * 50], "gzip")
    assert list(iter_records(path, "gzip")) == [b"one", b"two" * 50]
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[13] ^= 0xFF  # a flipped byte in the data of record 0 (bytes 12-14)
    (tmp_path / "b.tfrecords").write_bytes(bytes(raw))
    with pytest.raises(UserError, match=r"b.tfrecords: record 0: bad data checksum"):
        list(iter_records(tmp_path / "b.tfrecords"))
    with pytest.raises(UserError, match="record 0: bad length checksum.*wrong compression"):
        list(iter_records(path, "none"))  # a GZIP file read as uncompressed


def test_clevr_with_masks_round_trip_and_splits(tmp_path, clevr_file):
    src, truth = clevr_file
    summary = convert("clevr_with_masks", [src], tmp_path / "clevr.h5")
    assert summary["n"] == 6 and summary["shape"] == (1, 240, 320, 3)
    info = read_info(tmp_path / "clevr.h5")
    with h5py.File(tmp_path / "clevr.h5") as f:
        for i, t in enumerate(truth):
            assert np.array_equal(f["frames"][i, 0], t["image"])
            assert np.array_equal(f["masks"][i, 0], t["labels"])
            assert np.array_equal(f["color"][i], t["color"])
        assert f["color"].attrs["axes"] == "n o" and f["pixel_coords"].attrs["axes"] == "n o 3"
        assert f["counts"][:, 0].tolist() == [2, 7, 3, 5, 8, 1]  # visibility minus the background entity
    assert info.splits["clevr6"].tolist() == [0, 2, 3, 5]  # at most 6 objects
    assert info.splits["paper_train"].tolist() == [0, 2, 3, 5]  # the first 70,000 CLEVR6 scenes (all 4 here)
    assert info.metadata["background_entities"] == ["background"]
    item = H5Dataset(tmp_path / "clevr.h5", split="clevr6")[1]
    assert tuple(item["frames"].shape) == (1, 3, 240, 320) and int(item["masks"].max()) == 7 - 4


def test_resize_rule_crops_then_resizes_masks_nearest(tmp_path, clevr_file):
    src, truth = clevr_file
    convert("clevr_with_masks", [src], tmp_path / "c.h5", crop="29:221,64:256", resolution=(48, 48), limit=2)
    with h5py.File(tmp_path / "c.h5") as f:
        masks = f["masks"][:, 0]
        assert f["frames"].shape == (2, 1, 48, 48, 3)
    crop = truth[1]["labels"][29:221, 64:256]  # 192 x 192, 4 source pixels per output pixel
    rows = ((np.arange(48) + 0.5) * 4).astype(int)
    assert np.array_equal(masks[1], crop[rows][:, rows])
    assert set(np.unique(masks[1])) <= set(np.unique(crop))  # nearest: no new ids


def _variant_records(rng, variant):
    o, channels = {"binarized": (4, 1), "colored_on_grayscale": (6, 3), "colored_on_colored": (5, 3)}[variant]
    factors = {k: () for k in ("x", "y", "shape", "visibility", "orientation", "scale")}
    factors["color"] = (channels,)
    return [
        deepmind_image_record(rng, 64, 64, o, n, channels, entity_last=True, factors=factors) for n in (1, 3, o - 1)
    ]


@pytest.mark.parametrize("variant", ["binarized", "colored_on_grayscale", "colored_on_colored"])
def test_multi_dsprites_variants_transpose_the_mask(tmp_path, variant):
    records = _variant_records(np.random.default_rng(1), variant)
    src = write_tfrecord(tmp_path / f"multi_dsprites_{variant}.tfrecords", [r[0] for r in records], "gzip")
    convert("multi_dsprites", [src], tmp_path / "m.h5")  # the variant is read from the file name
    info = read_info(tmp_path / "m.h5")
    assert info.metadata["options"]["variant"] == variant
    assert info.c == (1 if variant == "binarized" else 3)
    with h5py.File(tmp_path / "m.h5") as f:
        for i, (_, truth) in enumerate(records):
            assert np.array_equal(f["masks"][i, 0], truth["labels"])
            assert np.array_equal(f["frames"][i, 0], truth["image"])
        assert f["color"].shape == (
            3,
            {"binarized": 4, "colored_on_grayscale": 6, "colored_on_colored": 5}[variant],
            info.c,
        )


def test_tetrominoes_and_objects_room_background_entities(tmp_path):
    rng = np.random.default_rng(2)
    factors = {"x": (), "y": (), "shape": (), "color": (3,), "visibility": ()}
    tet = [deepmind_image_record(rng, 35, 35, 4, 3, factors=factors) for _ in range(3)]
    convert("tetrominoes", [write_tfrecord(tmp_path / "t.tfrecords", [r[0] for r in tet], "gzip")], tmp_path / "t.h5")
    room = [deepmind_image_record(rng, 64, 64, 10, 6, n_bg=4) for _ in range(2)]
    src = write_tfrecord(tmp_path / "objects_room_test_six_objects.tfrecords", [r[0] for r in room], "gzip")
    convert("objects_room", [src], tmp_path / "r.h5")
    with h5py.File(tmp_path / "t.h5") as f:
        assert np.array_equal(f["masks"][2, 0], tet[2][1]["labels"]) and f["frames"].shape[2:4] == (35, 35)
    info = read_info(tmp_path / "r.h5")
    assert info.metadata["background_entities"] == ["sky", "floor", "wall", "wall"]
    assert info.metadata["options"]["variant"] == "six_objects" and info.metadata["entity_label_offset"] == -3
    with h5py.File(tmp_path / "r.h5") as f:
        assert np.array_equal(f["masks"][1, 0], room[1][1]["labels"])  # sky, floor and walls all 0
        assert sorted(np.unique(f["masks"][1, 0]).tolist()) == list(range(7))


def test_cater_is_zlib_with_one_byte_string_per_video(tmp_path):
    rng = np.random.default_rng(3)
    records = [cater_record(rng) for _ in range(2)]
    src = write_tfrecord(tmp_path / "cater_with_masks_train.tfrecords-00000-of-00100", [r[0] for r in records], "zlib")
    with pytest.raises(UserError, match="record 0"):  # read as GZIP it is not a GZIP file
        list(iter_records(src, "gzip"))
    convert("cater_with_masks", [src], tmp_path / "cater.h5")
    info = read_info(tmp_path / "cater.h5")
    assert (info.t, info.h, info.w) == (33, 64, 64) and info.extras["object_positions"].time_axis
    with h5py.File(tmp_path / "cater.h5") as f:
        t = records[1][1]
        assert np.array_equal(f["frames"][1], t["video"]) and np.array_equal(f["masks"][1], t["labels"])
        assert np.allclose(f["object_positions"][1], t["positions"].transpose(1, 0, 2))
        assert np.allclose(f["camera_matrix"][1], t["camera"])


def test_truncated_shard_names_file_and_record_and_writes_nothing(tmp_path, clevr_file):
    src, _ = clevr_file
    raw = gzip.decompress(src.read_bytes())
    cut = tmp_path / "cut.tfrecords"
    cut.write_bytes(gzip.compress(raw[: len(raw) - 1000]))
    out = tmp_path / "out.h5"
    with pytest.raises(UserError, match=r"cut.tfrecords: record 5: truncated") as exc:
        convert("clevr_with_masks", [cut], out)
    assert exc.value.exit_code == 2
    assert not out.exists() and not list(tmp_path.glob(".out.h5.tmp-*"))


def test_wrong_or_missing_feature_names_the_record(tmp_path):
    short = example(
        {
            "image": one_byte_entries(np.zeros((35, 35, 3), np.uint8)),
            "mask": one_byte_entries(np.zeros((3, 35, 35, 1), np.uint8)),
        }
    )  # 3 masks, not 4
    src = write_tfrecord(tmp_path / "t.tfrecords", [short], "gzip")
    with pytest.raises(UserError, match=r"t.tfrecords: record 0: feature 'mask' holds 3675 bytes, expected 4900"):
        convert("tetrominoes", [src], tmp_path / "t.h5")
    wrong = example({"image": float_list(np.zeros(3)), "mask": one_byte_entries(np.zeros(4900, np.uint8))})
    src = write_tfrecord(tmp_path / "w.tfrecords", [wrong], "gzip")
    with pytest.raises(UserError, match=r"w.tfrecords: record 0: feature 'image' is a float list, expected bytes"):
        convert("tetrominoes", [src], tmp_path / "t.h5")
    no_mask = example({"image": one_byte_entries(np.zeros((35, 35, 3), np.uint8))})
    src = write_tfrecord(tmp_path / "m.tfrecords", [no_mask], "gzip")
    with pytest.raises(UserError, match=r"m.tfrecords: record 0: missing feature 'mask'"):
        convert("tetrominoes", [src], tmp_path / "t.h5")
    assert not (tmp_path / "t.h5").exists()


def _parser():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    add_convert_parser(sub)
    add_check_parser(sub)
    return parser


def test_cli_handlers_convert_list_and_check(tmp_path, clevr_file, capsys):
    src, _ = clevr_file
    parser = _parser()
    args = parser.parse_args(["convert", "--list", "--json"])
    assert args.func(args) == 0
    names = [s["name"] for s in json.loads(capsys.readouterr().out)]
    assert names == sorted(
        [
            "clevr_with_masks",
            "multi_dsprites",
            "tetrominoes",
            "objects_room",
            "cater_with_masks",
            "clevrtex",
            "movi",
            "coco",
        ]
    )
    out = tmp_path / "c.h5"
    args = parser.parse_args(
        [
            "convert",
            "clevr_with_masks",
            str(src),
            "--out",
            str(out),
            "--limit",
            "4",
            "--split",
            "val=3:4",
            "--split",
            "train=0:3",
            "--resolution",
            "32",
            "32",
            "--quiet",
        ]
    )
    assert args.func(args) == 0
    info = read_info(out)
    assert info.n == 4 and (info.h, info.w) == (32, 32)
    assert info.splits["train"].tolist() == [0, 1, 2] and info.splits["val"].tolist() == [3]
    args = parser.parse_args(["check", str(out)])
    assert args.func(args) == 0
    assert "no inconsistencies" in capsys.readouterr().out
    for bad in (
        ["convert", "clevr_with_masks", str(src), "--out", str(out), "--split", "val=9:20"],
        ["convert", "clevr_withmasks", str(src), "--out", str(out)],
        ["convert", "clevr_with_masks", str(src)],
    ):
        args = parser.parse_args(bad)
        with pytest.raises(UserError) as exc:
            args.func(args)
        assert exc.value.exit_code == 2
    assert read_info(out).n == 4  # the failed runs left the earlier file as it was


class _Lines(Converter):
    name = "toy.lines"
    description = "a plugin's converter"
    axes = {"counts": "n t"}

    def records(self):
        for path in self.inputs:
            for k, line in enumerate(path.read_text().split()):
                frames = np.full((1, 4, 4, 3), int(line), np.uint8)
                masks = np.zeros((1, 4, 4), np.int16)
                masks[0, : k + 1] = 1
                yield Record(frames, masks, {"counts": np.array([1], np.int16)})


def test_plugin_registers_a_converter_through_the_hook(tmp_path):
    from ocf import plugins
    from ocf.hookspecs import hookimpl

    class Toy:
        @hookimpl
        def ocf_register_converters(self, registry):
            registry.add("converter", "toy.lines", _Lines)

    loaded = plugins.Plugins()
    info = loaded.add_module(Toy(), "toy")
    assert info.status == "ok" and ("converter", "toy.lines") in info.entries
    assert get_converter("toy.lines", loaded.registry) is _Lines and "coco" in converters(loaded.registry)
    (tmp_path / "in.txt").write_text("10 20 30")
    convert("toy.lines", [tmp_path / "in.txt"], tmp_path / "toy.h5", registry=loaded.registry)
    with h5py.File(tmp_path / "toy.h5") as f:
        assert f["frames"][:, 0, 0, 0, 0].tolist() == [10, 20, 30]


def test_converted_clevr_trains_with_the_shipped_slot_attention_spec(tmp_path, clevr_file):
    from ocf import plugins, train
    from ocf.spec import load

    src, _ = clevr_file
    data = tmp_path / "clevr6_32.h5"
    convert(
        "clevr_with_masks",
        [src],
        data,
        crop="29:221,64:256",
        resolution=(32, 32),
        splits={"train": "0:4", "val": "4:5", "test": "5:6"},
    )
    spec = load(
        ROOT / "configs" / "slot_attention" / "shapes_32.yaml",
        plugins.default().registry,
        overrides=[
            f"data.path={data}",
            "data.dataset=hdf5",
            "data.generate=null",
            "data.resolution=[32,32]",
            "train.steps=2",
            "train.batch_size=2",
            "eval.metrics=[fg_ari,mse]",
        ],
    )
    run = train.run(spec, out=str(tmp_path / "run"), progress=False)
    lines = [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["step"] == 2 and np.isfinite(lines[-1]["loss/mse"])
    assert (Path(run) / "checkpoints" / "last.pt").exists()
