"""Converters from the field's standard datasets to ocf's HDF5 layout, without TensorFlow.

One module per source family: :mod:`~ocf.data.convert.deepmind` (CLEVR with masks,
Multi-dSprites, Tetrominoes, Objects Room, CATER with masks), :mod:`~ocf.data.convert.clevrtex`,
:mod:`~ocf.data.convert.movi` (Kubric MOVi-A..E as tfds writes them) and
:mod:`~ocf.data.convert.coco` (COCO-style instance annotations, also VOC). The built-in
converters live in the core, so converting works with every plugin switched off; a plugin
adds more through the ``ocf_register_converters`` hook (``registry.register(ConverterCls)``
with each class a subclass of :class:`Converter` declaring its ``name``).

    from ocf.data.convert import convert
    convert("clevr_with_masks", ["clevr_with_masks_train.tfrecords"], "data/clevr.h5",
            crop="29:221,64:256", resolution=(128, 128))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ocf.data.convert.base import Converter, Geometry, Record, labels_from_entities, parse_crop
from ocf.errors import RegistryError, UserError

__all__ = [
    "Converter",
    "Geometry",
    "Record",
    "builtin_converters",
    "convert",
    "converters",
    "get_converter",
    "labels_from_entities",
    "parse_crop",
]


def builtin_converters() -> dict[str, type[Converter]]:
    """The converters ocf ships, by name."""
    from ocf.data.convert import clevrtex, coco, deepmind, movi

    return {**deepmind.CONVERTERS, **clevrtex.CONVERTERS, **movi.CONVERTERS, **coco.CONVERTERS}


def converters(registry: Any = None) -> dict[str, type[Converter]]:
    """Built-in converters plus those plugins registered in ``registry`` (kind ``converter``)."""
    out = builtin_converters()
    if registry is not None:
        for entry in registry.entries("converter"):
            if entry.name in out:
                raise RegistryError(
                    f"converter {entry.name!r} of plugin {entry.plugin!r} has the name of a built-in converter"
                )
            if not (isinstance(entry.obj, type) and issubclass(entry.obj, Converter)):
                raise RegistryError(
                    f"converter {entry.name!r} of plugin {entry.plugin!r} must be a subclass of "
                    f"ocf.data.convert.Converter"
                )
            out[entry.name] = entry.obj
    return out


def get_converter(name: str, registry: Any = None) -> type[Converter]:
    known = converters(registry)
    if name not in known:
        import difflib

        close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise UserError(f"unknown source {name!r}{hint} (sources: {', '.join(sorted(known))})")
    return known[name]


def convert(
    source: str | type[Converter],
    inputs: list[str | Path],
    out: str | Path,
    *,
    variant: str | None = None,
    resolution: tuple[int, int] | None = None,
    crop: str | tuple[int, int, int, int] | float | None = None,
    limit: int | None = None,
    splits: dict[str, str] | None = None,
    progress: bool = False,
    registry: Any = None,
    chunk: int = 64,
) -> dict[str, Any]:
    """Convert ``inputs`` of ``source`` into the ocf file ``out`` (streaming, atomic).

    ``splits`` adds or replaces named splits as ranges (``{"val": "0:500"}``); ``limit``
    converts only the first records. Returns ``{"path", "n", "shape", "splits"}``."""
    from ocf.data.convert.writer import write_records

    cls = get_converter(source, registry) if isinstance(source, str) else source
    if resolution is not None:
        resolution = (int(resolution[0]), int(resolution[1]))
        if min(resolution) < 1:
            raise UserError(f"--resolution must be positive, got {resolution[0]} {resolution[1]}")
    geometry = Geometry(parse_crop(crop) if isinstance(crop, str) or crop is None else crop, resolution)
    converter = cls([Path(p) for p in inputs], variant=variant, geometry=geometry)
    return write_records(converter, out, limit=limit, splits=splits, progress=progress, chunk=chunk)
