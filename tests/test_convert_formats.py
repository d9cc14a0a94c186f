"""ocf data convert on ClevrTex (folder and tarball), Kubric MOVi (tfds shards) and COCO
(pycocotools JSON with polygon, RLE and crowd annotations), on files the tests write."""

import json
import tarfile

import h5py
import numpy as np
import pytest
from convert_fixtures import movi_record, write_clevrtex, write_movi
from PIL import Image

from ocf.data import H5Dataset, read_info
from ocf.data.convert import convert
from ocf.errors import UserError


def test_clevrtex_folder_official_splits_and_metadata(tmp_path):
    truth = write_clevrtex(tmp_path / "data", "full", 10, np.random.default_rng(0))
    convert("clevrtex", [tmp_path / "data"], tmp_path / "ct.h5")
    info = read_info(tmp_path / "ct.h5")
    # the reader's fractions: test [0, 0.1), val [0.1, 0.2), train [0.2, 1) of the scene numbers
    assert info.splits["test"].tolist() == [0] and info.splits["val"].tolist() == [1]
    assert info.splits["train"].tolist() == list(range(2, 10))
    assert info.metadata["vocabularies"]["shape"] == ["cube", "sphere"]
    with h5py.File(tmp_path / "ct.h5") as f:
        for i in range(10):
            assert np.array_equal(f["frames"][i, 0], truth[i]["image"])  # RGBA -> RGB
            assert np.array_equal(f["masks"][i, 0], truth[i]["mask"])
        assert f["counts"][:, 0].tolist() == [1 + i % 3 for i in range(10)]
        assert f["rotation"][2].tolist() == [0.0, 10.0, 20.0] and f["scene_index"][:].tolist() == list(range(10))


def test_clevrtex_tarball_variants_and_reader_crop(tmp_path):
    truth = write_clevrtex(tmp_path / "src", "camo", 5, np.random.default_rng(1))
    write_clevrtex(tmp_path / "ood", "outd", 3, np.random.default_rng(2))
    with tarfile.open(tmp_path / "clevrtex_camo.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src" / "clevrtex_camo", arcname="clevrtex_camo")
    convert("clevrtex", [tmp_path / "clevrtex_camo.tar.gz"], tmp_path / "camo.h5", crop="center:0.8", resolution=(8, 8))
    info = read_info(tmp_path / "camo.h5")
    assert info.metadata["options"]["variant"] == "camo" and (info.h, info.w) == (8, 8)
    # bounds int(0.1 * 5) = 0 and int(0.2 * 5) = 1: test is empty (left out), val is scene 0
    assert {k: v.tolist() for k, v in info.splits.items()} == {"train": [1, 2, 3, 4], "val": [0]}
    side = int(0.8 * 24)  # the reader's centre square: 19 x 19 from 24 x 32
    y0, x0 = (24 - side) // 2, (32 - side) // 2
    crop = truth[3]["mask"][y0 : y0 + side, x0 : x0 + side]
    rows = ((np.arange(8) + 0.5) * side / 8).astype(int)
    with h5py.File(tmp_path / "camo.h5") as f:
        order = f["scene_index"][:].tolist()
        assert np.array_equal(f["masks"][order.index(3), 0], crop[rows][:, rows])
    convert("clevrtex", [tmp_path / "ood"], tmp_path / "ood.h5", variant="outd")
    assert read_info(tmp_path / "ood.h5").splits["test"].tolist() == [0, 1, 2]  # OOD: an evaluation set


def test_clevrtex_missing_mask_or_scene_is_an_error_without_output(tmp_path):
    write_clevrtex(tmp_path / "a", "full", 4, np.random.default_rng(0))
    next((tmp_path / "a").rglob("CLEVRTEX_full_000002_flat.png")).unlink()
    with pytest.raises(UserError, match=r"scene 2: missing mask file CLEVRTEX_full_000002_flat.png"):
        convert("clevrtex", [tmp_path / "a"], tmp_path / "a.h5")
    write_clevrtex(tmp_path / "b", "full", 4, np.random.default_rng(0))
    for p in (tmp_path / "b").rglob("CLEVRTEX_full_000001*"):
        p.unlink()
    with pytest.raises(UserError, match=r"missing scene numbers \[1\]"):
        convert("clevrtex", [tmp_path / "b"], tmp_path / "b.h5")
    assert not (tmp_path / "a.h5").exists() and not (tmp_path / "b.h5").exists()


@pytest.fixture()
def movi_dir(tmp_path):
    rng = np.random.default_rng(4)
    train = [movi_record(rng) for _ in range(3)]
    val = [movi_record(rng)]
    root = write_movi(
        tmp_path / "movi_c" / "128x128" / "1.0.0",
        "movi_c",
        {"train": [[train[0][0], train[1][0]], [train[2][0]]], "validation": [[val[0][0]]]},
    )
    return root, [r[1] for r in train + val]


def test_movi_frames_segmentations_and_extras(tmp_path, movi_dir):
    root, truth = movi_dir
    summary = convert("movi", [root], tmp_path / "movi.h5")
    assert summary["n"] == 4 and summary["splits"] == {"train": 3, "val": 1}
    info = read_info(tmp_path / "movi.h5")
    assert info.metadata["dataset"] == "movi_c" and info.t == 3
    assert info.extras["boxes"].time_axis and not info.extras["first_boxes"].time_axis
    with h5py.File(tmp_path / "movi.h5") as f:
        assert np.array_equal(f["frames"][3], truth[3]["video"])
        assert np.array_equal(f["masks"][1], truth[1]["segs"])  # instance i is i + 1, background 0
        assert np.array_equal(f["depth"][0], truth[0]["depth"])
        assert np.array_equal(f["forward_flow"][2], truth[2]["flow"])
        assert f["depth_range"][0].tolist() == [0.5, 20.0]
        boxes = f["boxes"][0]  # [T O 4] (x, y, w, h) px; bboxes are normalized ymin, xmin, ymax, xmax
        assert boxes[:, 0].tolist() == [[3, 2, 6, 4]] * 3
        assert boxes[1, 1].tolist() == [4, 8, 4, 4] and boxes[0, 1].tolist() == [0, 0, 0, 0]
        assert np.array_equal(f["first_boxes"][0], boxes[0]) and f["visibility"].shape == (4, 3, 2)
    item = H5Dataset(tmp_path / "movi.h5", split="train", frames=2)[0]
    assert tuple(item["frames"].shape) == (2, 3, 16, 16) and tuple(item["boxes"].shape) == (2, 2, 4)


def test_movi_resize_scales_boxes_and_resamples_masks(tmp_path, movi_dir):
    root, truth = movi_dir
    convert("movi", [root], tmp_path / "m8.h5", resolution=(8, 8), limit=1)
    with h5py.File(tmp_path / "m8.h5") as f:
        assert f["masks"][0, 0].tolist() == truth[0]["segs"][0, 1::2, 1::2].tolist()
        assert f["boxes"][0, 0, 0].tolist() == [1.5, 1, 3, 2]


def test_movi_truncated_or_short_shard(tmp_path, movi_dir):
    root, _ = movi_dir
    shard = root / "movi_c-train.tfrecord-00000-of-00002"
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2 + 7])
    with pytest.raises(UserError, match=r"movi_c-train.tfrecord-00000-of-00002: record \d: truncated"):
        convert("movi", [root], tmp_path / "x.h5")
    info = json.loads((root / "dataset_info.json").read_text())
    info["splits"][1]["shardLengths"] = ["2"]
    (root / "dataset_info.json").write_text(json.dumps(info))
    with pytest.raises(UserError, match=r"validation.tfrecord-00000-of-00001: 1 records, but dataset_info.json says 2"):
        convert("movi", [root / "movi_c-validation.tfrecord-00000-of-00001"], tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()


def _coco(tmp_path):
    from pycocotools import mask as mask_utils

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(folder / "a.jpg", quality=95)
    Image.fromarray(rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)).save(folder / "b.png")
    rle_mask = np.zeros((40, 60), np.uint8, order="F")
    rle_mask[5:15, 40:50] = 1
    rle = mask_utils.encode(rle_mask)
    rle["counts"] = rle["counts"].decode()
    crowd = np.zeros((40, 60), np.uint8)
    crowd[30:40, 0:60] = 1
    column_major = crowd.flatten(order="F")
    runs, value, count = [], 0, 0
    for v in column_major:
        if v != value:
            runs.append(count)
            value, count = v, 0
        count += 1
    runs.append(count)
    anns = [
        {
            "id": 1,
            "image_id": 1,
            "category_id": 3,
            "iscrowd": 0,
            "bbox": [0, 0, 20, 20],
            "segmentation": [[0, 0, 20, 0, 20, 20, 0, 20]],
            "area": 400,
        },
        {
            "id": 2,
            "image_id": 1,
            "category_id": 7,
            "iscrowd": 0,
            "bbox": [40, 5, 10, 10],
            "segmentation": rle,
            "area": 100,
        },
        {
            "id": 3,
            "image_id": 1,
            "category_id": 1,
            "iscrowd": 1,
            "bbox": [0, 30, 60, 10],
            "segmentation": {"size": [40, 60], "counts": runs},
            "area": 600,
        },
        {
            "id": 4,
            "image_id": 2,
            "category_id": 3,
            "iscrowd": 0,
            "bbox": [10, 10, 10, 10],
            "segmentation": [[10, 10, 20, 10, 20, 20, 10, 20]],
            "area": 100,
        },
    ]
    doc = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "height": 40, "width": 60},
            {"id": 2, "file_name": "b.png", "height": 30, "width": 30},
        ],
        "annotations": anns,
        "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}, {"id": 7, "name": "train"}],
    }
    (tmp_path / "instances_val2017.json").write_text(json.dumps(doc))
    return tmp_path / "instances_val2017.json", folder


def test_coco_polygons_rle_crowd_and_the_resize_rule(tmp_path):
    ann, folder = _coco(tmp_path)
    convert("coco", [ann, folder], tmp_path / "coco.h5", resolution=(20, 20))
    info = read_info(tmp_path / "coco.h5")
    assert info.splits["val"].tolist() == [0, 1] and info.metadata["categories"]["7"] == "train"
    with h5py.File(tmp_path / "coco.h5") as f:
        labels = f["masks"][0, 0]  # 40x60 -> centred 40x40 (columns 10..49) -> 20x20, nearest
        assert labels[1, 1] == 1 and labels[4, 17] == 2  # polygon instance, RLE instance
        assert (labels[15:] == -1).all() and labels[12, 10] == 0  # crowd rows 30..39 are ignore
        assert f["category"][0].tolist() == [3, 7] and f["counts"][:, 0].tolist() == [2, 1]
        assert f["boxes"][0, 1].tolist() == [15, 2.5, 5, 5]  # (40-10, 5) / 2 and 10 / 2
        assert f["category"][1].tolist() == [3, 0] and f["present"][1].tolist() == [1, 0]  # padded


def test_coco_needs_resolution_and_existing_images(tmp_path):
    ann, folder = _coco(tmp_path)
    with pytest.raises(UserError, match="give --resolution"):
        convert("coco", [ann, folder], tmp_path / "c.h5")
    (folder / "b.png").unlink()
    with pytest.raises(UserError, match=r"image 2 \(b.png\): image file .*b.png not found"):
        convert("coco", [ann, folder], tmp_path / "c.h5", resolution=(16, 16))
    assert not (tmp_path / "c.h5").exists()
