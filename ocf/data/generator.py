"""Procedural dataset generators and :func:`make_dataset`.

A generator is a class registered with ``registry.register(GeneratorCls)``:

.. code-block:: python

    class Dots(Generator):
        name = "dots"
        description = "one white dot on black"
        video = False

        class Options(Generator.Options):
            radius: int = Field(3, ge=1, le=16, description="dot radius in pixels")

        def generate(self, n, seed, options, progress=None):
            ...  # frames [N T H W C] uint8, masks [N T H W] int16, extras [N ...]

Generators are deterministic under ``seed``; the helpers here give every sample its own
random stream (:func:`sample_rngs`) so that sample ``i`` depends only on ``(seed, i)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from ocf.errors import UserError
from ocf.fields import SPEC_CONFIG

Progress = Callable[[int], Any]
"""Called with the number of samples just finished (``tqdm.update`` fits)."""


class Generator:
    """Base class of procedural dataset generators.

    Subclasses set ``name``, ``description``, ``video``, extend :class:`Options` and
    implement :meth:`generate`. ``axes`` names the axes of extras (``{"boxes": "n t o 4"}``)
    so that readers know which extras have a time axis.
    """

    #: the registry kind (``registry.register`` reads it)
    kind: ClassVar[str] = "dataset"
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    video: ClassVar[bool] = False
    axes: ClassVar[dict[str, str]] = {}

    class Options(BaseModel):
        """Options every generator has."""

        model_config = SPEC_CONFIG  # unknown options are errors; floats are finite
        resolution: int = Field(32, ge=8, le=512, description="image height and width in pixels")

    def generate(
        self, n: int, seed: int, options: Generator.Options, progress: Progress | None = None
    ) -> dict[str, np.ndarray]:
        """Make ``n`` samples.

        Returns ``frames [N T H W C]`` uint8, ``masks [N T H W]`` int16/int32 (0 background,
        1.. object ids stable over time, -1 ignore) and extras with a leading ``N`` axis.
        """
        raise NotImplementedError

    def channels(self, options: Generator.Options) -> list[str]:
        """Names of the frame channels (``["r", "g", "b"]``), stored in the file metadata."""
        return ["r", "g", "b"]

    @classmethod
    def parse_options(cls, options: dict[str, Any] | BaseModel | None) -> Generator.Options:
        """Validate ``options``; a problem raises :class:`UserError` naming the option
        (``resolution: Input should be greater than or equal to 8 (got 4)``)."""
        if isinstance(options, cls.Options):
            return options
        if isinstance(options, BaseModel):
            options = options.model_dump()
        try:
            return cls.Options.model_validate(dict(options or {}))
        except ValidationError as exc:
            problems = format_validation_error(exc, cls.Options)
            raise UserError(f"dataset {cls.name!r}: bad options:\n{problems}") from None


def format_validation_error(exc: ValidationError, model: type[BaseModel]) -> str:
    """One line per problem: ``  option: message (got value)``."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(options)"
        if err["type"] == "extra_forbidden":
            known = ", ".join(model.model_fields)
            lines.append(f"  {loc}: unknown option; options are {known}")
        else:
            got = f" (got {err['input']!r})" if "input" in err and not isinstance(err["input"], dict) else ""
            lines.append(f"  {loc}: {err['msg']}{got}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- helpers


def sample_rngs(seed: int, start: int, stop: int) -> Iterator[np.random.Generator]:
    """One independent generator per sample ``i`` in ``[start, stop)``, seeded ``(seed, i)``."""
    for i in range(start, stop):
        yield np.random.default_rng([seed, i])


def chunks(n: int, size: int = 256) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` ranges covering ``[0, n)``."""
    for start in range(0, n, size):
        yield start, min(n, start + size)


def stack_params(params: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """A list of per-sample parameter dicts → a dict of stacked arrays ``[N ...]``."""
    return {k: np.stack([np.asarray(p[k]) for p in params]) for k in params[0]}


def count_ids(masks: np.ndarray, max_id: int) -> np.ndarray:
    """Number of distinct object ids (``1..max_id``) present per map: ``[... H W]`` → ``[...]``."""
    return id_presence(masks, max_id).sum(axis=-1)


def id_presence(masks: np.ndarray, num_objects: int) -> np.ndarray:
    """``[... H W]`` label maps → ``[... O]`` bool: whether id ``o + 1`` has any pixel."""
    lead = masks.shape[:-2]
    flat = np.clip(masks.reshape(-1, masks.shape[-2] * masks.shape[-1]), 0, num_objects).astype(np.int64)
    present = np.zeros((flat.shape[0], num_objects + 1), dtype=bool)
    present[np.arange(flat.shape[0])[:, None], flat] = True
    return present[:, 1:].reshape(*lead, num_objects)


def boxes_from_masks(masks: np.ndarray, num_objects: int) -> np.ndarray:
    """Tight boxes of every object id: ``[... H W]`` → ``[... O 4]`` float32 ``(x, y, w, h)``
    in pixels; zeros where the object has no pixel."""
    h, w = masks.shape[-2:]
    out = np.zeros((*masks.shape[:-2], num_objects, 4), dtype=np.float32)
    for o in range(num_objects):
        m = masks == o + 1
        rows, cols = m.any(axis=-1), m.any(axis=-2)
        present = rows.any(axis=-1)
        y0 = rows.argmax(axis=-1)
        y1 = h - rows[..., ::-1].argmax(axis=-1)
        x0 = cols.argmax(axis=-1)
        x1 = w - cols[..., ::-1].argmax(axis=-1)
        box = np.stack([x0, y0, x1 - x0, y1 - y0], axis=-1).astype(np.float32)
        out[..., o, :] = np.where(present[..., None], box, 0.0)
    return out


def check_arrays(name: str, arrays: dict[str, np.ndarray], n: int) -> None:
    """The contract of :meth:`Generator.generate` (a failure is a bug in the generator)."""
    frames, masks = arrays.get("frames"), arrays.get("masks")
    if frames is None or frames.dtype != np.uint8 or frames.ndim != 5 or frames.shape[0] != n:
        raise RuntimeError(f"generator {name!r} returned bad frames (need uint8 [N T H W C] with N={n})")
    if masks is not None and (masks.shape != frames.shape[:4] or not np.issubdtype(masks.dtype, np.integer)):
        raise RuntimeError(
            f"generator {name!r} returned masks {masks.shape} {masks.dtype}, need integer {frames.shape[:4]}"
        )
    for key, value in arrays.items():
        if value.shape[0] != n:
            raise RuntimeError(f"generator {name!r} returned {key} with {value.shape[0]} samples, need {n}")


# --------------------------------------------------------------------------- making files

DEFAULT_SPLITS = {"train": 0.8, "val": 0.1, "test": 0.1}


def _generate(generator: Generator, name: str, n: int, seed: int, opts: Any, progress: bool) -> dict[str, np.ndarray]:
    if not progress:
        return generator.generate(n, seed, opts)
    from tqdm import tqdm

    with tqdm(total=n, desc=name, unit="sample", leave=False, dynamic_ncols=True) as bar:
        return generator.generate(n, seed, opts, progress=bar.update)


def make_dataset(
    registry: Any,
    name: str,
    out_path: str | os.PathLike,
    n: int,
    seed: int = 0,
    options: dict[str, Any] | None = None,
    splits: dict[str, float] | None = None,
    progress: bool = True,
    compression: str | None = "lzf",
) -> Path:
    """Generate ``n`` samples of the registered generator ``name`` and write them to
    ``out_path`` (ocf layout, atomically: temp file + :func:`os.replace`).

    ``options`` are validated first (a bad one raises :class:`UserError` naming it);
    ``splits`` are fractions ``{"train": 0.8, "val": 0.1, "test": 0.1}`` turned into
    contiguous index ranges. Returns the path written.
    """
    from ocf.data.format import split_ranges, write_dataset

    cls = registry.get("dataset", name)
    opts = cls.parse_options(options)
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise UserError(f"n: the number of samples must be a positive integer, got {n!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UserError(f"seed: must be a non-negative integer, got {seed!r}")
    split_fractions = DEFAULT_SPLITS if splits is None else splits
    index = split_ranges(int(n), split_fractions)

    generator = cls()
    arrays = _generate(generator, name, int(n), int(seed), opts, progress)
    check_arrays(name, arrays, int(n))

    import ocf

    metadata = {
        "generator": name,
        "description": cls.description,
        "options": opts.model_dump(mode="json"),
        "seed": int(seed),
        "n": int(n),
        "video": bool(cls.video),
        "channels": generator.channels(opts),
        "split_fractions": dict(split_fractions),
        "masks": "0 background, 1.. object ids stable over time, -1 ignore (overlap)",
        "ocf_version": getattr(ocf, "__version__", "unknown"),
    }
    frames = arrays.pop("frames")
    masks = arrays.pop("masks", None)
    return write_dataset(
        out_path,
        frames,
        masks,
        extras=arrays,
        metadata=metadata,
        splits=index,
        axes=dict(cls.axes),
        compression=compression,
    )
