"""The data layer: file layouts, validation errors, the reader, loaders and the CLI."""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

try:
    import ocf_common.datasets  # noqa: F401
except ImportError:  # running from a checkout without the plugins installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))

from ocf.cli.data import add_parser, parse_settings  # noqa: E402
from ocf.data import H5Dataset, collate, describe, make_dataset, make_loader, read_info, write_dataset  # noqa: E402
from ocf.data.frames import import_frames  # noqa: E402
from ocf.errors import DataError, UserError  # noqa: E402
from ocf.records import Batch  # noqa: E402
from ocf.registry import Registry  # noqa: E402
from ocf_common.datasets import GENERATORS  # noqa: E402


@pytest.fixture(scope="module")
def registry():
    reg = Registry()
    for name, cls in GENERATORS.items():
        reg.add("dataset", name, cls)
    return reg


@pytest.fixture(scope="module")
def shapes_file(registry, tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "shapes.h5"
    return make_dataset(registry, "shapes", path, n=40, seed=3, options={"resolution": 16}, progress=False)


@pytest.fixture(scope="module")
def video_file(registry, tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "video.h5"
    return make_dataset(
        registry,
        "moving_sprites",
        path,
        n=20,
        seed=1,
        options={"resolution": 16, "frames": 8, "camera_shift": 1.0},
        progress=False,
    )


def raw(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f if isinstance(f[k], h5py.Dataset)}


# --------------------------------------------------------------------------- our layout


def test_write_read_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (6, 3, 8, 8, 3), dtype=np.uint8)
    masks = rng.integers(-1, 4, (6, 3, 8, 8)).astype(np.int16)
    extras = {
        "counts": np.full((6, 3), 2, np.int16),
        "visibility": np.ones((6, 4), bool),
        "boxes": rng.random((6, 3, 4, 4)).astype(np.float32),
    }
    splits = {"train": np.arange(4), "test": np.arange(4, 6)}
    path = write_dataset(
        tmp_path / "sub" / "d.h5",
        frames,
        masks,
        extras,
        {"generator": "x", "seed": 5},
        splits,
        axes={"boxes": "n t o 4"},
    )
    assert not list(path.parent.glob(".*tmp*"))  # atomic: no temp file left behind
    info = read_info(path)
    assert (info.layout, info.n, info.t, info.h, info.w, info.c) == ("ocf", 6, 3, 8, 8, 3)
    assert info.metadata == {"generator": "x", "seed": 5}
    assert list(info.splits) == ["train", "test"]
    assert (
        info.extras["boxes"].time_axis and info.extras["counts"].time_axis and not info.extras["visibility"].time_axis
    )
    with h5py.File(path) as f:  # metadata is a JSON string, never pickle
        assert isinstance(f.attrs["metadata"], str) and json.loads(f.attrs["metadata"])["seed"] == 5
    ds = H5Dataset(path, "test")
    item = ds[1]
    assert torch.allclose(item["frames"], torch.from_numpy(frames[5]).permute(0, 3, 1, 2).float() / 255)
    assert torch.equal(item["masks"], torch.from_numpy(masks[5]).long())
    assert torch.allclose(item["boxes"], torch.from_numpy(extras["boxes"][5]))
    path = write_dataset(tmp_path / "odd.h5", frames, masks, splits={"odd": np.array([5, 1, 3])})
    for in_memory in (True, False):  # any order of indices
        odd = H5Dataset(path, "odd", in_memory=in_memory)
        assert torch.equal(odd.get_batch([0, 2]).masks, torch.from_numpy(masks[[5, 3]]).long())


def test_make_dataset_file(registry, shapes_file):
    info = read_info(shapes_file)
    assert info.layout == "ocf" and (info.n, info.t, info.h, info.c) == (40, 1, 16, 3)
    assert {k: len(v) for k, v in info.splits.items()} == {"train": 32, "val": 4, "test": 4}
    all_idx = np.concatenate(list(info.splits.values()))
    assert sorted(all_idx.tolist()) == list(range(40))
    meta = info.metadata
    assert meta["generator"] == "shapes" and meta["seed"] == 3 and meta["options"]["resolution"] == 16
    assert meta["description"] and meta["channels"] == ["r", "g", "b"]
    again = raw(
        make_dataset(
            registry,
            "shapes",
            shapes_file.parent / "again.h5",
            n=40,
            seed=3,
            options={"resolution": 16},
            progress=False,
        )
    )
    first = raw(shapes_file)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])


def test_make_dataset_rejects_bad_input(registry, tmp_path):
    with pytest.raises(UserError, match="resolution"):
        make_dataset(registry, "shapes", tmp_path / "x.h5", n=4, options={"resolution": 2}, progress=False)
    with pytest.raises(UserError, match="shapez"):
        make_dataset(registry, "shapez", tmp_path / "x.h5", n=4, progress=False)
    with pytest.raises(UserError, match="n:"):
        make_dataset(registry, "shapes", tmp_path / "x.h5", n=0, progress=False)
    with pytest.raises(UserError, match="sum"):
        make_dataset(registry, "shapes", tmp_path / "x.h5", n=4, splits={"train": 0.9, "val": 0.5}, progress=False)
    assert not list(tmp_path.iterdir())


def test_failed_write_keeps_old_file(registry, tmp_path, monkeypatch):
    path = make_dataset(registry, "shapes", tmp_path / "d.h5", n=4, progress=False)
    before = path.read_bytes()

    def broken(self, n, seed, options, progress=None):
        raise RuntimeError("boom")

    monkeypatch.setattr(GENERATORS["shapes"], "generate", broken)
    with pytest.raises(RuntimeError):
        make_dataset(registry, "shapes", path, n=4, progress=False)
    assert path.read_bytes() == before and len(list(tmp_path.iterdir())) == 1


# --------------------------------------------------------------------------- OCL layout


def write_ocl(path, n=10, h=12, w=12, onehot=False):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    labels = rng.integers(0, 4, (n, h, w)).astype(np.uint8)
    with h5py.File(path, "w") as f:
        f["image"] = image
        if onehot:
            hot = (labels[:, None] == np.arange(5)[None, :, None, None]).astype(np.float32)[..., None]  # [N O H W 1]
            hot[0, 1, 0, 0, 0] = 1.0  # pixel (0, 0) of sample 0 claimed by object 1 as well
            f["mask"] = hot
        else:
            f["mask"] = labels[..., None]
        f["visibility"] = np.ones((n, 5), np.float32)
        f["num_actual_objects"] = np.full((n, 1), 3, np.int64)
        f["color"] = rng.random((n, 5, 3))
    return image, labels


def test_ocl_label_map_loads_unchanged(tmp_path):
    path = tmp_path / "ocl.h5"
    image, labels = write_ocl(path)
    info = read_info(path)
    assert info.layout == "ocl" and (info.n, info.t, info.h, info.c) == (10, 1, 12, 3) and info.mask_kind == "labels"
    ds = H5Dataset(path, "train")  # no splits: the whole file
    assert len(ds) == 10
    item = ds[4]
    assert item["frames"].shape == (1, 3, 12, 12) and item["masks"].shape == (1, 12, 12)
    assert torch.allclose(item["frames"][0], torch.from_numpy(image[4]).permute(2, 0, 1).float() / 255)
    assert torch.equal(item["masks"][0], torch.from_numpy(labels[4]).long())
    assert item["counts"].tolist() == [3] and item["visibility"].shape == (5,) and item["color"].dtype == torch.float32
    lazy = H5Dataset(path, "train", in_memory=False)
    for key, value in lazy[4].items():
        assert torch.equal(value, item[key]), key
    assert len(H5Dataset(path, "0:4")) == 4 and len(H5Dataset(path, "50%:100%")) == 5
    assert describe(path)["layout"] == "ocl"


def test_ocl_onehot_masks_become_labels(tmp_path):
    path = tmp_path / "ocl1h.h5"
    _, labels = write_ocl(path, onehot=True)
    assert read_info(path).mask_kind == "onehot"
    for in_memory in (True, False):
        masks = H5Dataset(path, "all", in_memory=in_memory)[0]["masks"][0]
        expected = torch.from_numpy(labels[0]).long()
        expected[0, 0] = -1 if labels[0, 0, 0] != 1 else 1
        assert torch.equal(masks, expected)


# --------------------------------------------------------------------------- bad files


def write_minimal(path, n_frames=4, n_masks=4, rank=5, frames_dtype=np.uint8):
    with h5py.File(path, "w") as f:
        f.attrs["ocf_format"] = 1
        shape = (n_frames, 2, 8, 8, 3) if rank == 5 else (n_frames, 8, 8, 3)
        f["frames"] = np.zeros(shape, frames_dtype)
        f["masks"] = np.zeros((n_masks, 2, 8, 8), np.int16)


@pytest.mark.parametrize(
    "make_bad,words",
    [
        (lambda p: write_minimal(p, n_masks=3), ["masks", "mismatched"]),
        (lambda p: write_minimal(p, rank=4), ["frames", "rank 5"]),
        (lambda p: write_minimal(p, frames_dtype=np.float32), ["uint8"]),
        (lambda p: p.write_text("not an hdf5 file\n" * 10), ["HDF5"]),
        (lambda p: h5py.File(p, "w").close(), ["expected a 'frames'"]),
        (lambda p: None, ["no such file"]),
    ],
    ids=["mismatched-n", "wrong-rank", "float-frames", "not-hdf5", "empty", "missing-file"],
)
def test_bad_files_raise_data_error(tmp_path, make_bad, words):
    path = tmp_path / "bad.h5"
    make_bad(path)
    with pytest.raises(DataError) as err:
        H5Dataset(path)
    message = str(err.value)
    assert str(path) in message
    for word in words:
        assert word in message


def test_missing_dataset_and_bad_split(tmp_path, shapes_file):
    path = tmp_path / "nomask.h5"
    with h5py.File(path, "w") as f:
        f.attrs["ocf_format"] = 1
        f["masks"] = np.zeros((2, 1, 4, 4), np.int16)
    with pytest.raises(DataError, match="missing dataset 'frames'"):
        read_info(path)
    with pytest.raises(DataError) as err:
        H5Dataset(shapes_file, "validation")
    assert str(shapes_file) in str(err.value) and "train, val, test" in str(err.value)
    with pytest.raises(DataError, match="frames"):
        H5Dataset(shapes_file, frames=2)  # images have one frame


def test_truncated_file(tmp_path, shapes_file):
    path = tmp_path / "truncated.h5"
    data = shapes_file.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as err:
        H5Dataset(path)
    assert str(path) in str(err.value) and "truncated" in str(err.value)


# --------------------------------------------------------------------------- reader and loader


def test_loader_yields_batches(shapes_file):
    loader = make_loader(shapes_file, "train", batch_size=8, shuffle=True, seed=0, drop_last=True)
    batches = list(loader)
    assert len(batches) == 4
    b = batches[0]
    assert isinstance(b, Batch)
    assert b.frames.shape == (8, 1, 3, 16, 16) and b.frames.dtype == torch.float32
    assert 0 <= b.frames.min() and b.frames.max() <= 1
    assert b.masks.shape == (8, 1, 16, 16) and b.masks.dtype == torch.long
    assert b.extras["counts"].shape == (8, 1) and b.extras["color"].shape == (8, 4, 3)
    again = next(iter(make_loader(shapes_file, "train", batch_size=8, shuffle=True, seed=0)))
    assert torch.equal(again.frames, b.frames)  # seeded shuffling
    ordered = list(make_loader(shapes_file, "val", batch_size=3, shuffle=False))
    assert [x.frames.shape[0] for x in ordered] == [3, 1]


def test_lazy_equals_in_memory_and_collate(shapes_file):
    mem = H5Dataset(shapes_file, "test")
    lazy = H5Dataset(shapes_file, "test", in_memory=False)
    a = collate([mem[i] for i in range(4)])
    b = collate(lazy.__getitems__([0, 1, 2, 3]))
    assert torch.equal(a.frames, b.frames) and torch.equal(a.masks, b.masks)
    assert a.extras.keys() == b.extras.keys()
    for k in a.extras:
        assert torch.equal(a.extras[k], b.extras[k]), k
    lazy[0]
    clone = pickle.loads(pickle.dumps(lazy))  # no open h5py handle travels
    assert torch.equal(clone[1]["frames"], mem[1]["frames"])


def test_workers_read_lazily(shapes_file):
    plain = list(make_loader(shapes_file, "train", batch_size=16, shuffle=False, in_memory=False))
    workers = list(make_loader(shapes_file, "train", batch_size=16, shuffle=False, in_memory=False, num_workers=2))
    assert len(plain) == len(workers) == 2
    for x, y in zip(plain, workers):
        assert torch.equal(x.frames, y.frames) and torch.equal(x.masks, y.masks)


def test_frame_windows(video_file):
    file = raw(video_file)
    info = read_info(video_file)
    first = H5Dataset(video_file, "train", frames=3)  # evaluation: the first frames
    idx = int(info.splits["train"][2])
    item = first[2]
    assert item["frames"].shape == (3, 3, 16, 16)
    assert torch.equal(item["masks"], torch.from_numpy(file["masks"][idx, :3]).long())
    assert torch.equal(item["counts"], torch.from_numpy(file["counts"][idx, :3]))
    assert item["boxes"].shape == (3, 3, 4) and item["visibility"].shape == (3,)

    def offsets(ds):
        out = []
        for i in range(len(ds)):
            it, j = ds[i], int(ds.indices[i])
            starts = [
                s
                for s in range(8 - 3 + 1)
                if np.array_equal(it["masks"].numpy(), file["masks"][j, s : s + 3])
                and np.array_equal(it["camera"].numpy(), file["camera"][j, s : s + 3])
            ]
            assert starts, "a window must be a contiguous run of the clip, extras cut alike"
            out.append(starts[0])
        return out

    rand = H5Dataset(video_file, "train", frames=3, random_window=True, seed=7)
    got = offsets(rand)
    assert len(set(got)) > 1
    assert offsets(H5Dataset(video_file, "train", frames=3, random_window=True, seed=7)) == got
    lazy = H5Dataset(video_file, "train", frames=3, random_window=True, seed=7, in_memory=False)
    assert offsets(lazy) == got
    batch = next(iter(make_loader(video_file, "train", batch_size=4, shuffle=True, frames=3)))
    assert batch.frames.shape == (4, 3, 3, 16, 16) and batch.extras["boxes"].shape == (4, 3, 3, 4)


def test_describe(shapes_file, video_file):
    s = describe(shapes_file)
    assert s["layout"] == "ocf" and s["n"] == 40 and s["frames"]["shape"] == [40, 1, 16, 16, 3]
    assert s["splits"] == {"train": 32, "val": 4, "test": 4}
    objects = s["masks"]["objects_per_sample"]
    assert 1 <= objects["min"] <= objects["max"] <= 4 and sum(objects["histogram"].values()) == 40
    assert s["metadata"]["generator"] == "shapes"
    json.dumps(s)
    v = describe(video_file)
    assert v["video"] and v["extras"]["boxes"]["time_axis"] and not v["extras"]["visibility"]["time_axis"]


# --------------------------------------------------------------------------- CLI


def cli(registry):
    parser = argparse.ArgumentParser(prog="ocf")
    add_parser(parser.add_subparsers(dest="command", required=True), lambda: registry)

    def run(*argv):
        args = parser.parse_args([str(a) for a in argv])
        return args.func(args)

    return run


def test_cli_make_and_inspect(registry, tmp_path, capsys):
    run = cli(registry)
    out = tmp_path / "digits.h5"
    assert (
        run(
            "data",
            "make",
            "moving_digits",
            "frames=4",
            "--out",
            out,
            "--n",
            6,
            "--seed",
            2,
            "resolution=40",
            "--set",
            "digit_size=16",
            "--max-speed",
            "2.5",
            "--quiet",
        )
        == 0
    )
    info = read_info(out)
    assert (info.n, info.t, info.h, info.c) == (6, 4, 40, 1) and info.metadata["seed"] == 2
    assert info.metadata["options"]["digit_size"] == 16 and info.metadata["options"]["max_speed"] == 2.5
    png = tmp_path / "pics" / "digits.png"
    assert run("data", "inspect", out, "--out", png, "--n", 3, "--frames", 2) == 0
    text = capsys.readouterr().out
    assert "moving_digits" in text and "[N T H W C] = [6 4 40 40 1]" in text and str(png) in text
    from PIL import Image

    with Image.open(png) as im:
        assert im.size[0] > im.size[1] > 0  # 3 rows, 2 frames x (frame, overlay, mask) columns
    assert run("data", "inspect", out, "--json") == 0
    assert json.loads(capsys.readouterr().out)["n"] == 6
    assert run("data", "list", "shapes") == 0 and "background" in capsys.readouterr().out
    with pytest.raises(UserError, match="resolution"):
        run("data", "make", "shapes", "--out", tmp_path / "bad.h5", "resolution=1", "--quiet")
    with pytest.raises(UserError, match="KEY=VALUE"):
        run("data", "make", "shapes", "resolution", "--out", tmp_path / "bad.h5", "--quiet")
    with pytest.raises(UserError, match="backgrond: unknown option"):
        run("data", "make", "shapes", "--out", tmp_path / "bad.h5", "--backgrond", "random", "--quiet")
    with pytest.raises(SystemExit):  # other sub-commands still refuse unknown arguments
        run("data", "inspect", out, "--bogus", "1")
    with pytest.raises(DataError, match="no such file"):
        run("data", "inspect", tmp_path / "missing.h5")


def test_parse_settings():
    assert parse_settings(["a=1", "b=[1, 2]", "c=random", "--d=true", "e="]) == {
        "a": 1,
        "b": [1, 2],
        "c": "random",
        "d": True,
        "e": None,
    }


def test_import_frames(registry, tmp_path):
    from PIL import Image

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(11):  # natural order: frame_2 before frame_10
        Image.fromarray(np.full((20, 30, 3), i * 20, np.uint8)).save(folder / f"frame_{i}.png")
    (folder / "notes.txt").write_text("ignored")
    out = import_frames(folder, tmp_path / "clips.h5", clip_length=4, stride=2, resolution=(10, 12))
    info = read_info(out)
    assert (info.n, info.t, info.h, info.w, info.c) == (4, 4, 10, 12, 3) and not info.has_masks
    frames = raw(out)["frames"]
    assert frames[1, :, 0, 0, 0].tolist() == [40, 60, 80, 100]
    batch = next(iter(make_loader(out, "all", batch_size=2, shuffle=False)))
    assert batch.masks is None and batch.frames.shape == (2, 4, 3, 10, 12)
    run = cli(registry)
    assert run("data", "import-frames", folder, "--out", tmp_path / "c2.h5", "--clip-length", 5, "--quiet") == 0
    assert read_info(tmp_path / "c2.h5").n == 2 and read_info(tmp_path / "c2.h5").w == 30
    with pytest.raises(UserError, match="fewer than one clip"):
        import_frames(folder, tmp_path / "c3.h5", clip_length=20)
