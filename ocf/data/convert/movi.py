"""Kubric's MOVi-A..E as TensorFlow Datasets writes them on disk.

Facts from the MOVi builders (``challenges/movi/movi_{a..e}.py`` in
github.com/google-research/kubric) and tfds' serializer
(``tensorflow_datasets/core/example_serializer.py``, ``features/video_feature.py``):

- a version folder holds ``dataset_info.json`` (``name``; ``splits`` with ``name`` and
  ``shardLengths``, the record count of each shard) and uncompressed TFRecord shards
  ``<name>-<split>.tfrecord-<i:05d>-of-<n:05d>``;
- nested feature names are flattened with ``/``; integer tensors are ``int64_list``, floats
  ``float_list``, images and video frames ``bytes_list`` of PNGs (``Video`` = one PNG per
  frame); a sequence inside the ``instances`` sequence is stored ragged as
  ``<key>/ragged_flat_values`` plus ``<key>/ragged_row_lengths_0``;
- ``video (s h w 3)`` uint8; ``segmentations (s h w 1)`` uint8, 0 background and instance
  ``i`` as ``i + 1``; ``depth (s h w 1)`` uint16 PNG scaled to ``metadata/depth_range``;
  ``forward_flow (s h w 2)`` uint16 tensor scaled to ``metadata/forward_flow_range``
  (delta_row, delta_column); per instance ``positions (s 3)``, ``image_positions (s 2)``
  (normalized), ``visibility (s)`` (pixels), ``bboxes`` (normalized ymin, xmin, ymax, xmax
  for the frames listed in ``bbox_frames``); ``metadata/num_instances``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ocf.data.convert.base import Converter, Record, decode_image
from ocf.data.convert.tfrecord import Example, iter_records, parse_example
from ocf.errors import UserError

SPLIT_NAMES = {"train": "train", "validation": "val", "test": "test"}
_SHARD = re.compile(r"^(?P<name>.+)-(?P<split>[^-]+)\.tfrecord-(?P<i>\d{5})-of-(?P<n>\d{5})$")


class Movi(Converter):
    name = "movi"
    description = "Kubric MOVi-A..E videos (tfds on-disk format): frames, instance masks and extras"
    video = True
    axes = {
        "depth": "n t h w",
        "depth_range": "n 2",
        "forward_flow": "n t h w 2",
        "forward_flow_range": "n 2",
        "boxes": "n t o 4",
        "first_boxes": "n o 4",
        "centers": "n t o 2",
        "first_centers": "n o 2",
        "positions": "n t o 3",
        "visibility": "n t o",
        "present": "n o",
        "counts": "n t",
    }

    def __init__(self, inputs: list[Path], variant: str | None = None, geometry: Any = None) -> None:
        super().__init__(inputs, variant, geometry)
        self.dataset_name = ""
        self.shards = self._find_shards()

    # -- shards ---------------------------------------------------------------------
    def _find_shards(self) -> list[tuple[str, Path, int | None]]:
        """``(split, path, expected records)`` in order; dataset_info.json beside the shards."""
        files: list[Path] = []
        for p in self.inputs:
            if p.is_dir():
                files += sorted(q for q in p.iterdir() if _SHARD.match(q.name))
            elif p.is_file():
                files.append(p)
            else:
                raise UserError(f"{p}: no such file or folder")
        if not files:
            raise UserError(
                f"movi: no TFRecord shards (<name>-<split>.tfrecord-00000-of-000NN) in "
                f"{', '.join(map(str, self.inputs))}"
            )
        infos: dict[Path, dict[str, list[int]]] = {}
        out = []
        for f in files:
            m = _SHARD.match(f.name)
            if not m:
                raise UserError(f"{f}: not a tfds shard name (<name>-<split>.tfrecord-00000-of-000NN)")
            lengths = infos.setdefault(f.parent, self._read_info(f.parent))
            split, i = m.group("split"), int(m.group("i"))
            expected = lengths.get(split)
            if expected is not None and len(expected) != int(m.group("n")):
                raise UserError(
                    f"{f}: dataset_info.json lists {len(expected)} shards for split {split!r}, "
                    f"the file name says {int(m.group('n'))}"
                )
            out.append((split, f, None if expected is None else expected[i]))
        order = {s: k for k, s in enumerate(SPLIT_NAMES)}
        return sorted(out, key=lambda s: (order.get(s[0], len(order)), s[0], s[1].name))

    def _read_info(self, folder: Path) -> dict[str, list[int]]:
        path = folder / "dataset_info.json"
        if not path.is_file():
            raise UserError(f"{folder}: no dataset_info.json beside the shards (tfds writes one per version folder)")
        try:
            info = json.loads(path.read_text())
            self.dataset_name = self.dataset_name or str(info.get("name", ""))
            return {s["name"]: [int(x) for x in s.get("shardLengths", [])] for s in info.get("splits", [])}
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{path}: not a tfds dataset_info.json: {exc}") from None

    def total(self) -> int | None:
        counts = [n for _, _, n in self.shards]
        return None if any(n is None for n in counts) else sum(counts)  # type: ignore[misc]

    # -- records --------------------------------------------------------------------
    def records(self) -> Iterator[Record]:
        for split, path, expected in self.shards:
            count = 0
            for index, data in enumerate(iter_records(path, "none")):
                where = f"{path}: record {index}"
                record = self._record(Example(parse_example(data, where), where))
                record.info["split"] = SPLIT_NAMES.get(split, split)
                count += 1
                yield record
            if expected is not None and count != expected:
                raise UserError(f"{path}: {count} records, but dataset_info.json says {expected} (truncated shard?)")

    def _record(self, ex: Example) -> Record:
        frames = np.stack([decode_image(b, f"{ex.where}: video", "RGB") for b in ex.blobs("video")])
        t, h, w = frames.shape[:3]
        segs = np.stack([decode_image(b, f"{ex.where}: segmentations") for b in ex.blobs("segmentations", t)])
        o = int(ex.numbers("metadata/num_instances", "int64")[0])
        g = self.geometry
        masks = np.stack([g.labels(s.reshape(h, w).astype(np.int16)) for s in segs])
        extras: dict[str, np.ndarray] = {}
        if ex.has("depth"):
            depth = [decode_image(b, f"{ex.where}: depth").astype(np.uint16) for b in ex.blobs("depth", t)]
            extras["depth"] = np.stack([g.labels(d.reshape(h, w)) for d in depth])
            extras["depth_range"] = ex.numbers("metadata/depth_range", "float", (2,))
        if ex.has("forward_flow"):
            flow = ex.numbers("forward_flow", "int64", (t, h, w, 2)).astype(np.uint16)
            extras["forward_flow"] = np.stack([g.labels(f) for f in flow])
            extras["forward_flow_range"] = ex.numbers("metadata/forward_flow_range", "float", (2,))
        extras.update(self._instances(ex, o, t, h, w))
        counts = np.asarray([len(np.setdiff1d(np.unique(m), [0, -1])) for m in masks], np.int16)
        extras["counts"] = counts
        out = np.stack([g.image(f) for f in frames])
        return Record(out, masks, extras, {"objects": o})

    def _instances(self, ex: Example, o: int, t: int, h: int, w: int) -> dict[str, np.ndarray]:
        positions = ex.numbers("instances/positions", "float", (o, t, 3)).transpose(1, 0, 2)
        centers = ex.numbers("instances/image_positions", "float", (o, t, 2)).transpose(1, 0, 2)
        visibility = ex.numbers("instances/visibility", "int64", (o, t)).T.astype(np.int32)
        boxes = self._boxes(ex, o, t, h, w)
        return {
            "positions": positions.astype(np.float32),
            "centers": centers.astype(np.float32),
            "first_centers": centers[0].astype(np.float32),
            "visibility": visibility,
            "boxes": boxes,
            "first_boxes": boxes[0],
            "present": np.ones(o, np.uint8),
        }

    def _boxes(self, ex: Example, o: int, t: int, h: int, w: int) -> np.ndarray:
        """``[T O 4]`` (x, y, w, h) in output pixels; zeros where the instance is not visible."""
        lengths = ex.numbers("instances/bboxes/ragged_row_lengths_0", "int64", (o,))
        flat = ex.numbers("instances/bboxes/ragged_flat_values", "float")
        frames = ex.numbers("instances/bbox_frames/ragged_flat_values", "int64")
        if flat.size != 4 * int(lengths.sum()) or frames.size != int(lengths.sum()):
            raise UserError(f"{ex.where}: instances/bboxes and bbox_frames disagree with their row lengths")
        flat = flat.reshape(-1, 4)
        out = np.zeros((t, o, 4), np.float32)
        starts = np.concatenate([[0], np.cumsum(lengths)])
        for i in range(o):
            for k in range(int(starts[i]), int(starts[i + 1])):
                f = int(frames[k])
                if not 0 <= f < t:
                    raise UserError(f"{ex.where}: instance {i} has a box for frame {f} of {t}")
                ymin, xmin, ymax, xmax = flat[k]
                corners = self.geometry.points(np.array([[xmin * w, ymin * h], [xmax * w, ymax * h]]), h, w)
                oh, ow = self.geometry.out_size(h, w)
                corners[:, 0] = corners[:, 0].clip(0, ow)
                corners[:, 1] = corners[:, 1].clip(0, oh)
                out[f, i] = [corners[0, 0], corners[0, 1], corners[1, 0] - corners[0, 0], corners[1, 1] - corners[0, 1]]
        return out

    # -- splits and metadata ----------------------------------------------------------
    def standard_splits(self, n: int, info: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        names = [item["split"] for item in info]
        return {s: np.asarray([i for i, x in enumerate(names) if x == s], np.int64) for s in dict.fromkeys(names)}

    def metadata(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset_name,
            "background_entities": ["background"],
            "labels": "MOVi segmentations: 0 = background, instance i has label i + 1",
            "entity_axis": "per-instance extras: o = instance i (label i + 1), padded with 0; present [N O] marks "
            "real instances",
            "boxes": "(x, y, w, h) in output pixels, zero where the instance is not visible; first_boxes = frame 0",
            "centers": "MOVi's image_positions, normalized (0, 1) as stored, not moved by crop or resize",
            "depth": "uint16 as stored: depth = value / 65535 * (max - min) + min with depth_range [min max]",
            "forward_flow": "uint16 as stored (delta_row, delta_column), scaled like depth by forward_flow_range "
            "in the stored resolution's pixels",
            "entity_label_offset": 1,
            "visibility_means": "pixels" if self.geometry.identity else "source pixels",
            "source_format": "tfds TFRecord shards + dataset_info.json",
        }


CONVERTERS = {Movi.name: Movi}
