"""COCO-style instance annotations (COCO itself; PASCAL VOC through its COCO-format JSON).

Read with ``pycocotools`` (github.com/cocodataset/cocoapi, ``PythonAPI/pycocotools/coco.py``):
``COCO(json)`` indexes ``images`` (``id``, ``file_name``, ``height``, ``width``) and
``annotations`` (``image_id``, ``category_id``, ``bbox`` = x, y, w, h in pixels,
``iscrowd``, and ``segmentation`` as polygons or RLE — compressed or, for crowds, an
uncompressed ``counts`` list); ``annToMask`` rasterises either form to an ``[H W]`` 0/1 mask.

Conventions: instances get labels 1.. in annotation-id order; a pixel of two or more
instances is -1 (ignore), as is every pixel of a crowd region; background 0. Images have
different sizes, so ``--resolution H W`` is required: the centred box of the target aspect is
cut and resized (image bilinear, labels nearest), the usual "resize the short side, then
centre-crop" of DINOSAUR-style evaluation.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ocf.data.convert.base import Converter, Record, decode_image
from ocf.data.convert.tfrecord import require
from ocf.errors import UserError


class Coco(Converter):
    name = "coco"
    description = "COCO-style instance segmentation (COCO, or VOC via its COCO-format JSON)"
    axes = {"category": "n o", "boxes": "n o 4", "present": "n o", "counts": "n t", "image_id": "n"}

    def __init__(self, inputs: list[Path], variant: str | None = None, geometry: Any = None) -> None:
        super().__init__(inputs, variant, geometry)
        jsons = [p for p in self.inputs if p.suffix.lower() == ".json"]
        folders = [p for p in self.inputs if p.is_dir()]
        other = [p for p in self.inputs if p not in jsons and p not in folders]
        if other:
            raise UserError(f"coco: {other[0]}: expected annotation JSON files and image folders")
        if not jsons or not folders or len(folders) not in (1, len(jsons)):
            raise UserError(
                "coco: give annotation JSON file(s) and the image folder (one, or one per JSON), e.g. "
                "instances_val2017.json val2017/"
            )
        if self.geometry.resolution is None:
            raise UserError("coco: images differ in size; give --resolution H W")
        self.pairs = [(j, folders[0] if len(folders) == 1 else folders[k]) for k, j in enumerate(jsons)]
        self.categories: dict[int, str] = {}

    def _load(self, path: Path) -> Any:
        coco_mod = require("pycocotools.coco", "the coco converter")
        if not path.is_file():
            raise UserError(f"{path}: no such file")
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                return coco_mod.COCO(str(path))
        except (ValueError, KeyError, TypeError, AssertionError) as exc:
            raise UserError(f"{path}: not a COCO annotation file: {exc!r}") from None

    def records(self) -> Iterator[Record]:
        for json_path, folder in self.pairs:
            coco = self._load(json_path)
            self.categories.update({int(c["id"]): str(c.get("name", c["id"])) for c in coco.loadCats(coco.getCatIds())})
            split = _split_name(json_path)
            for image_id in sorted(coco.getImgIds()):
                record = self._record(coco, image_id, folder, json_path)
                record.info["split"] = split
                yield record

    def _record(self, coco: Any, image_id: int, folder: Path, json_path: Path) -> Record:
        entry = coco.loadImgs(image_id)[0]
        where = f"{json_path}: image {image_id} ({entry.get('file_name')})"
        path = folder / str(entry.get("file_name", ""))
        if not path.is_file():
            raise UserError(f"{where}: image file {path} not found")
        image = decode_image(path.read_bytes(), where, "RGB")
        h, w = image.shape[:2]
        anns = sorted(coco.loadAnns(coco.getAnnIds(imgIds=image_id, iscrowd=None)), key=lambda a: a["id"])
        labels, owners, crowd = np.zeros((h, w), np.int16), np.zeros((h, w), np.int16), np.zeros((h, w), bool)
        categories, boxes = [], []
        for ann in anns:
            try:
                with warnings.catch_warnings():  # pycocotools' numpy-2 copy= notice, not ours to fix
                    warnings.simplefilter("ignore", DeprecationWarning)
                    mask = coco.annToMask(ann).astype(bool)
            except Exception as exc:  # pycocotools raises plain exceptions on malformed segmentations
                raise UserError(f"{where}: annotation {ann.get('id')}: bad segmentation: {exc!r}") from None
            if mask.shape != (h, w):
                raise UserError(f"{where}: annotation {ann.get('id')} has a {mask.shape} mask for a {h}x{w} image")
            if ann.get("iscrowd", 0):
                crowd |= mask
                continue
            categories.append(int(ann["category_id"]))
            boxes.append(self._box(ann.get("bbox", [0, 0, 0, 0]), h, w))
            labels[mask] = len(categories)
            owners += mask
        labels[owners > 1] = -1
        labels[crowd] = -1
        g = self.geometry
        o = len(categories)
        extras = {
            "category": np.asarray(categories, np.int32).reshape(o),
            "boxes": np.asarray(boxes, np.float32).reshape(o, 4),
            "present": np.ones(o, np.uint8),
            "counts": np.asarray([o], np.int16),
            "image_id": np.asarray(image_id, np.int64),
        }
        return Record(g.image(image)[None], g.labels(labels)[None], extras, {"objects": o})

    def _box(self, bbox: list[float], h: int, w: int) -> list[float]:
        x, y, bw, bh = (float(v) for v in bbox)
        corners = self.geometry.points(np.array([[x, y], [x + bw, y + bh]]), h, w)
        oh, ow = self.geometry.out_size(h, w)
        corners[:, 0] = corners[:, 0].clip(0, ow)
        corners[:, 1] = corners[:, 1].clip(0, oh)
        return [corners[0, 0], corners[0, 1], corners[1, 0] - corners[0, 0], corners[1, 1] - corners[0, 1]]

    def standard_splits(self, n: int, info: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        names = [item["split"] for item in info]
        return {s: np.asarray([i for i, x in enumerate(names) if x == s], np.int64) for s in dict.fromkeys(names)}

    def metadata(self) -> dict[str, Any]:
        return {
            "background_entities": ["background"],
            "labels": "0 = background, 1.. instances in annotation-id order; -1 = crowd regions and pixels of "
            "several instances (ignore)",
            "categories": {str(k): v for k, v in sorted(self.categories.items())},
            "entity_axis": "per-instance extras: o = label o + 1; category is the COCO category_id; boxes are "
            "(x, y, w, h) in output pixels",
            "source_format": "COCO instance annotations (pycocotools)",
        }


def _split_name(path: Path) -> str:
    stem = path.stem.lower()
    for key, name in (("train", "train"), ("val", "val"), ("test", "test")):
        if key in stem:
            return name
    return stem


CONVERTERS = {Coco.name: Coco}
