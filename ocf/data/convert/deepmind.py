"""DeepMind's multi-object datasets (github.com/deepmind/multi_object_datasets).

Every fact below is taken from that repository's readers (``clevr_with_masks.py``,
``multi_dsprites.py``, ``tetrominoes.py``, ``objects_room.py``, ``cater_with_masks.py``):

- each file is a TFRecord of ``tf.Example``; GZIP-compressed except CATER, which is ZLIB;
- image datasets declare ``image`` and ``mask`` as ``FixedLenFeature(shape, tf.string)`` and
  decode them with ``decode_raw(uint8)`` + ``squeeze(-1)``: a bytes list with one 1-byte
  entry per element (CLEVR's ``color/material/shape/size`` likewise, one byte per entity);
- CATER stores the whole video and the whole mask each as ONE byte string, reshaped to
  ``[33 64 64 3]`` and ``[33 11 64 64 1]``; ``object_positions`` is stored ``[11 33 3]``
  and transposed to ``[33 11 3]``; ``camera_matrix`` is ``[33 4 4]``;
- Multi-dSprites stores the mask as ``[64 64 O 1]`` and transposes it to ``[O 64 64 1]``;
  binarized images are greyscale (1 channel), the others RGB;
- masks are 0/255 per entity; entity 0 is the background (README: "the first true group
  contains all background pixels"), Objects Room has four background entities (sky,
  floor and two wall halves).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ocf.data.convert.base import Converter, Record, contiguous_splits, first_n_splits, labels_from_entities
from ocf.data.convert.tfrecord import Example, iter_examples

# The training/test sizes of the Slot Attention and IODINE papers (Slot Attention follows
# IODINE's protocol): the first N samples train, the next 320 are the held-out test images.
PAPER_SPLITS = {
    "clevr_with_masks": {"paper_train": 70_000, "paper_test": 320},  # of the CLEVR6 scenes
    "multi_dsprites": {"paper_train": 60_000, "paper_test": 320},
    "tetrominoes": {"paper_train": 60_000, "paper_test": 320},
}


@dataclass(frozen=True)
class Field:
    """One per-entity factor: tf.Example kind (``float`` or ``bytes``), shape after the
    entity axis, and the extra's axes."""

    kind: str
    shape: tuple[int, ...] = ()

    def axes(self) -> str:
        return " ".join(["n", "o"] + [str(s) for s in self.shape])


class _MultiObject(Converter):
    """Shared reader of the single-image datasets."""

    compression: ClassVar[str] = "gzip"
    image_size: ClassVar[tuple[int, int]] = (64, 64)
    entities: ClassVar[dict[str | None, int]] = {}
    background: ClassVar[list[str]] = ["background"]
    mask_entity_last: ClassVar[bool] = False
    fields: ClassVar[dict[str, Field]] = {}

    def __init__(self, inputs: list[Path], variant: str | None = None, geometry: Any = None) -> None:
        if variant is None and self.variants:
            names = " ".join(Path(p).name for p in inputs)
            found = [v for v in self.variants if v in names]
            variant = found[0] if len(found) == 1 else None
        super().__init__(inputs, variant, geometry)

    @property
    def n_entities(self) -> int:
        return self.entities[self.variant]

    @property
    def channels(self) -> int:
        return 3

    def field_specs(self) -> dict[str, Field]:
        return self.fields

    def records(self) -> Iterator[Record]:
        for example in iter_examples(self.inputs, self.compression):
            yield self.convert(example)

    def convert(self, ex: Example) -> Record:
        h, w = self.image_size
        o, c = self.n_entities, self.channels
        image = ex.raw("image", (h, w, c))
        if self.mask_entity_last:
            mask = ex.raw("mask", (h, w, o, 1)).transpose(2, 0, 1, 3)
        else:
            mask = ex.raw("mask", (o, h, w, 1))
        labels = labels_from_entities(mask[..., 0] > 127, len(self.background))
        g = self.geometry
        extras = {}
        for name, spec in self.field_specs().items():
            shape = (o,) + spec.shape
            if spec.kind == "bytes":
                extras[name] = ex.raw(name, shape).astype(np.int16)
            else:
                extras[name] = ex.numbers(name, "float", shape)
        objects = self._count(labels, extras)
        extras["counts"] = np.asarray([objects], dtype=np.int16)
        return Record(g.image(image)[None], g.labels(labels)[None], extras, {"objects": objects})

    def _count(self, labels: np.ndarray, extras: dict[str, np.ndarray]) -> int:
        """Foreground objects: by ``visibility`` when the dataset has it, else by mask pixels."""
        nb = len(self.background)
        if "visibility" in extras:
            return int((extras["visibility"][nb:] > 0.5).sum())
        return int(len(np.setdiff1d(np.unique(labels), [0, -1])))

    def extra_axes(self) -> dict[str, str]:
        axes = {name: spec.axes() for name, spec in self.field_specs().items()}
        axes["counts"] = "n t"
        return axes

    def metadata(self) -> dict[str, Any]:
        nb = len(self.background)
        return {
            "background_entities": self.background,
            "labels": f"0 = background (entities 0..{nb - 1}: {', '.join(self.background)}); entity e >= {nb} "
            f"has label {'e' if nb == 1 else f'e - {nb - 1}'}; -1 where foreground entities overlap",
            "entity_axis": f"per-entity extras index all {self.n_entities} entities (background first); "
            "values are the source's, unchanged by crop or resize",
            "entity_label_offset": 1 - nb,
            "visibility_means": "exists",
            "source_format": f"TFRecord of tf.Example, {self.compression.upper()}",
        }

    def standard_splits(self, n: int, info: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        splits = contiguous_splits(n)
        sizes = PAPER_SPLITS.get(self.name)
        if sizes:
            splits.update(first_n_splits(np.arange(n), sizes))
        return splits


class ClevrWithMasks(_MultiObject):
    name = "clevr_with_masks"
    description = "CLEVR (with masks): 240x320 renders, up to 10 objects, one background entity"
    image_size = (240, 320)
    entities = {None: 11}
    fields = {
        "x": Field("float"),
        "y": Field("float"),
        "z": Field("float"),
        "pixel_coords": Field("float", (3,)),
        "rotation": Field("float"),
        "size": Field("bytes"),
        "material": Field("bytes"),
        "shape": Field("bytes"),
        "color": Field("bytes"),
        "visibility": Field("float"),
    }

    def standard_splits(self, n: int, info: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        splits = contiguous_splits(n)
        clevr6 = np.asarray([i for i, item in enumerate(info) if item["objects"] <= 6], dtype=np.int64)
        if len(clevr6):
            splits["clevr6"] = clevr6
            splits.update(first_n_splits(clevr6, PAPER_SPLITS[self.name]))
        return splits


class MultiDSprites(_MultiObject):
    name = "multi_dsprites"
    description = "Multi-dSprites: 64x64 sprites (oval, heart, square) on a uniform background"
    variants = {
        "colored_on_grayscale": "2-5 HSV-coloured sprites on a grey background (6 entities)",
        "colored_on_colored": "1-4 RGB sprites on an RGB background (5 entities)",
        "binarized": "2-3 white sprites on black, greyscale images (4 entities)",
    }
    default_variant = "colored_on_grayscale"
    entities = {"binarized": 4, "colored_on_grayscale": 6, "colored_on_colored": 5}
    mask_entity_last = True

    @property
    def channels(self) -> int:
        return 1 if self.variant == "binarized" else 3

    def field_specs(self) -> dict[str, Field]:
        scalar = {k: Field("float") for k in ("x", "y", "shape", "visibility", "orientation", "scale")}
        return {**scalar, "color": Field("float", (self.channels,))}


class Tetrominoes(_MultiObject):
    name = "tetrominoes"
    description = "Tetrominoes: 35x35 images of three Tetris-like pieces on black"
    image_size = (35, 35)
    entities = {None: 4}
    fields = {
        "x": Field("float"),
        "y": Field("float"),
        "shape": Field("float"),
        "color": Field("float", (3,)),
        "visibility": Field("float"),
    }


class ObjectsRoom(_MultiObject):
    name = "objects_room"
    description = "Objects Room: 64x64 MuJoCo rooms with up to 3 (test variants: 4-6) objects"
    variants = {
        "train": "the 1M training scenes (7 entities)",
        "six_objects": "test: exactly 6 objects (10)",
        "empty_room": "test: sky, walls and floor only (4)",
        "identical_color": "test: 4-6 objects of one colour (10)",
    }
    default_variant = "train"
    entities = {"train": 7, "six_objects": 10, "empty_room": 4, "identical_color": 10}
    background = ["sky", "floor", "wall", "wall"]


class CaterWithMasks(_MultiObject):
    name = "cater_with_masks"
    description = "CATER (with masks): 33-frame 64x64 videos, moving camera, up to 10 objects"
    compression = "zlib"
    entities = {None: 11}
    video = True
    sequence_length = 33

    def convert(self, ex: Example) -> Record:
        t, (h, w), o = self.sequence_length, self.image_size, self.n_entities
        video = ex.raw("image", (t, h, w, 3))
        mask = ex.raw("mask", (t, o, h, w, 1))
        labels = labels_from_entities(mask[..., 0] > 127, 1)
        positions = ex.numbers("object_positions", "float", (o, t, 3)).transpose(1, 0, 2)
        camera = ex.numbers("camera_matrix", "float", (t, 4, 4))
        g = self.geometry
        frames = np.stack([g.image(f) for f in video])
        masks = np.stack([g.labels(m) for m in labels])
        counts = np.asarray([len(np.setdiff1d(np.unique(m), [0, -1])) for m in masks], dtype=np.int16)
        extras = {"object_positions": positions, "camera_matrix": camera, "counts": counts}
        return Record(frames, masks, extras, {"objects": int(counts.max(initial=0))})

    def extra_axes(self) -> dict[str, str]:
        return {"object_positions": "n t o 3", "camera_matrix": "n t 4 4", "counts": "n t"}


CONVERTERS = {c.name: c for c in (ClevrWithMasks, MultiDSprites, Tetrominoes, ObjectsRoom, CaterWithMasks)}
