"""ClevrTex (Karazija et al., 2021), from its folder layout or its tarballs.

Facts from the dataset's reader, ``ool/clevrtex_eval.py`` (class ``CLEVRTEX``) in
github.com/karazijal/clevrtex:

- variants ``full``, ``pbg``, ``vbg``, ``grassbg``, ``camo`` and ``outd`` (OOD), each under a
  folder ``clevrtex_<variant>``; scene ``i`` is ``CLEVRTEX_<variant>_<i:06d>.png`` (image,
  RGBA: the first three channels are used), ``..._flat.png`` (the mask: one id per pixel,
  0 background) and ``....json`` (metadata: ``objects`` with ``shape``, ``material``,
  ``size``, ``rotation``, and ``ground_material``), found in any sub-folder;
- scene indices must run 0..N-1 without gaps (the reader refuses missing numbers);
- splits are index fractions: test ``[0, 0.1)``, val ``[0.1, 0.2)``, train ``[0.2, 1)`` with
  bounds ``int(fraction * N)``; ``outd`` has no splits (written here as ``test``, all of it);
- its default view crops the centred square of side ``int(0.8 * min(H, W))`` and resizes
  (image bilinear, mask nearest): ``--crop center:0.8 --resolution 128 128``.
"""

from __future__ import annotations

import json
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ocf.data.convert.base import Converter, Record, decode_image
from ocf.errors import UserError

SPLITS = {"test": (0.0, 0.1), "val": (0.1, 0.2), "train": (0.2, 1.0)}
_NAME = re.compile(r"CLEVRTEX_([a-z]+)_(\d{6})(_flat\.png|\.png|\.json)$")
_PARTS = {".png": "image", "_flat.png": "mask", ".json": "meta"}


class ClevrTex(Converter):
    name = "clevrtex"
    description = "ClevrTex: 240x320 textured CLEVR-like scenes with 3-10 objects"
    variants = {
        "full": "the main set",
        "pbg": "plain backgrounds",
        "vbg": "varied backgrounds",
        "grassbg": "grass backgrounds",
        "camo": "CAMO: camouflaged objects",
        "outd": "OOD: unseen shapes and materials (an evaluation set, no splits)",
    }
    default_variant = None
    axes = {
        "counts": "n t",
        "rotation": "n o",
        "shape": "n o",
        "size": "n o",
        "material": "n o",
        "ground_material": "n",
        "scene_index": "n",
    }

    def __init__(self, inputs: list[Path], variant: str | None = None, geometry: Any = None) -> None:
        self._given = variant
        super().__init__(inputs, variant or "full", geometry)
        self.vocab: dict[str, dict[str, int]] = {k: {} for k in ("shape", "size", "material", "ground_material")}

    # -- reading -------------------------------------------------------------------
    def _variant_of(self, found: str, where: str) -> bool:
        """Whether a file of variant ``found`` is wanted (the first one fixes the variant)."""
        if self._given is None:
            self._given = found
            self.variant = found
            if found not in self.variants:
                raise UserError(f"{where}: unknown ClevrTex variant {found!r}")
        return found == self.variant

    def _scenes(self) -> Iterator[tuple[int, dict[str, bytes], str]]:
        for path in self.inputs:
            if path.is_dir():
                yield from self._folder(path)
            elif path.is_file() and tarfile.is_tarfile(path):
                yield from self._tarball(path)
            else:
                raise UserError(f"{path}: not a ClevrTex folder or tarball")

    def _folder(self, root: Path) -> Iterator[tuple[int, dict[str, bytes], str]]:
        images = {}
        for p in root.rglob("CLEVRTEX_*.png"):
            m = _NAME.search(p.name)
            if m and m.group(3) == ".png" and self._variant_of(m.group(1), str(p)):
                images[int(m.group(2))] = p
        for index in sorted(images):
            img = images[index]
            parts = {"image": img, "mask": img.with_name(img.stem + "_flat.png"), "meta": img.with_suffix(".json")}
            for kind, p in parts.items():
                if not p.is_file():
                    raise UserError(f"{root}: scene {index}: missing {kind} file {p.name}")
            yield index, {k: p.read_bytes() for k, p in parts.items()}, f"{img}"

    def _tarball(self, path: Path) -> Iterator[tuple[int, dict[str, bytes], str]]:
        pending: dict[int, dict[str, bytes]] = {}
        try:
            with tarfile.open(path, mode="r|*") as tar:
                for member in tar:
                    m = _NAME.search(member.name)
                    if not (member.isfile() and m and self._variant_of(m.group(1), f"{path}:{member.name}")):
                        continue
                    index = int(m.group(2))
                    parts = pending.setdefault(index, {})
                    parts[_PARTS[m.group(3)]] = tar.extractfile(member).read()  # type: ignore[union-attr]
                    if len(parts) == 3:
                        yield index, pending.pop(index), f"{path}:{member.name}"
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise UserError(f"{path}: cannot read the tarball (truncated or corrupt?): {exc}") from None
        for index, parts in sorted(pending.items()):
            missing = sorted(set(_PARTS.values()) - set(parts))
            raise UserError(f"{path}: scene {index}: missing {' and '.join(missing)} file")

    def records(self) -> Iterator[Record]:
        for index, parts, where in self._scenes():
            yield self._record(index, parts, where)

    def _record(self, index: int, parts: dict[str, bytes], where: str) -> Record:
        image = decode_image(parts["image"], where, None)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=-1)
        image = np.ascontiguousarray(image[..., :3]).astype(np.uint8)
        mask = decode_image(parts["mask"], where.replace(".png", "_flat.png"))
        if mask.ndim != 2 or mask.shape != image.shape[:2]:
            raise UserError(
                f"{where}: the _flat.png mask has shape {list(mask.shape)}, expected one id per pixel "
                f"{list(image.shape[:2])}"
            )
        try:
            meta = json.loads(parts["meta"])
            objects = list(meta["objects"])
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{where}: bad metadata JSON: {exc}") from None
        extras = {
            "counts": np.asarray([len(objects)], np.int16),
            "rotation": np.asarray([float(o.get("rotation", 0.0)) for o in objects], np.float32),
            "ground_material": np.asarray(self._code("ground_material", meta.get("ground_material")), np.int16),
            "scene_index": np.asarray(index, np.int64),
        }
        for key in ("shape", "size", "material"):
            extras[key] = np.asarray([self._code(key, o.get(key)) for o in objects], np.int16)
        g = self.geometry
        labels = g.labels(mask.astype(np.int16))
        return Record(g.image(image)[None], labels[None], extras, {"index": index, "objects": len(objects)})

    def _code(self, key: str, value: Any) -> int:
        table = self.vocab[key]
        return table.setdefault(str(value), len(table))

    # -- splits and metadata ----------------------------------------------------------
    def standard_splits(self, n: int, info: list[dict[str, Any]]) -> dict[str, np.ndarray]:
        indices = np.asarray([item["index"] for item in info], dtype=np.int64)
        order = np.argsort(indices, kind="stable")
        ranked = indices[order]
        gaps = np.setdiff1d(np.arange(ranked[0], ranked[-1] + 1), ranked)
        if len(gaps) or len(np.unique(ranked)) != len(ranked):
            what = f"missing scene numbers {gaps[:10].tolist()}" if len(gaps) else "duplicate scene numbers"
            raise UserError(f"clevrtex ({self.variant}): {what} in {', '.join(map(str, self.inputs))}")
        if self.variant == "outd":
            return {"test": order.astype(np.int64)}
        out = {}
        for name in ("train", "val", "test"):
            lo, hi = SPLITS[name]
            out[name] = np.sort(order[int(lo * n) : int(hi * n)]).astype(np.int64)
        return {k: v for k, v in out.items() if len(v)}

    def metadata(self) -> dict[str, Any]:
        return {
            "background_entities": ["background"],
            "labels": "the _flat.png ids: 0 = background, 1.. objects",
            "vocabularies": {k: list(v) for k, v in self.vocab.items()},
            "entity_axis": "per-object extras follow the metadata's objects list (padded with 0)",
            "source_format": "ClevrTex image / _flat.png mask / JSON per scene",
        }


CONVERTERS = {ClevrTex.name: ClevrTex}
