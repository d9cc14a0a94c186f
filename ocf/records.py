"""Typed records that flow between the five stages of a model.

Axis glossary (used in every docstring and einops pattern in ocf):

====  =========================================================
b     batch
t     time (frames); images are videos with t = 1
k     slots (objects)
d     slot / latent dimension
n     tokens (flattened spatial positions of a feature map)
c     channels
h w   height, width
o     ground-truth objects
r     rotation dimensions (Rotating Features)
p     particles (importance samples)
====  =========================================================

Each stage returns one record; the model keeps them all in a :class:`State`, which is
what every component receives.  A component declares the dotted fields it *needs*
(``"latents.frames"``) and *provides*; :func:`ocf.assembly.build` checks the chain before
anything runs.  Optional fields are ``None`` when a component does not provide them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ocf.prob import DiagonalGaussian  # noqa: F401 - part of the records' vocabulary (Latents.posterior)


@dataclass
class Batch:
    """One batch of data.

    frames: ``[b t c h w]`` float in [0, 1].
    masks: ``[b t h w]`` long ground-truth object ids, 0 = background, -1 = ignore
        (e.g. overlap); ``None`` when the dataset has no masks.
    extras: per-dataset tensors with a leading ``b`` axis (``counts [b t]``,
        ``boxes [b t o 4]``, ``visibility [b o]``, ...).
    """

    frames: Tensor
    masks: Tensor | None = None
    extras: dict[str, Tensor] = field(default_factory=dict)

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            frames=self.frames.to(device),
            masks=None if self.masks is None else self.masks.to(device),
            extras={k: v.to(device) for k, v in self.extras.items()},
        )

    @property
    def shape(self) -> tuple[int, int, int, int, int]:
        b, t, c, h, w = self.frames.shape
        return b, t, c, h, w


@dataclass
class Features:
    """Encoder output.

    tokens: ``[b t n c]`` flattened feature tokens.
    grid: ``(h, w)`` of the token grid when the tokens come from a feature map.
    maps: ``[b t ... h w]`` dense feature maps when the model keeps them (e.g. rotating
        features ``[b t r c h w]``).
    """

    tokens: Tensor | None = None
    grid: tuple[int, int] | None = None
    maps: Tensor | None = None
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class Latents:
    """Grouper output.

    objects: ``[b k d]`` (time-invariant) or ``[b t k d]`` object latents.
    frames: ``[b t d]`` per-frame latents (SIMONe).
    posterior: distribution over ``objects`` (same shape) when the grouper is
        probabilistic.
    frame_posterior: distribution over ``frames``.
    presence: ``[b t k]`` in [0, 1]; attention: ``[b t k n]``.
    where: ``[b t k 4]`` boxes ``(sx, sy, tx, ty)`` in image coordinates normalised to
        [-1, 1] (x right, y down): object k covers x in [tx - sx, tx + sx] and y in
        [ty - sy, ty + sy] (the affine map glimpse → image of a spatial transformer).
    masks: ``[b t k h w]`` soft or hard masks a grouper produces directly (e.g.
        clustering); used for segmentation when no decoder provides masks.
    """

    objects: Tensor | None = None
    frames: Tensor | None = None
    posterior: DiagonalGaussian | None = None
    frame_posterior: DiagonalGaussian | None = None
    presence: Tensor | None = None
    where: Tensor | None = None
    attention: Tensor | None = None
    masks: Tensor | None = None
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class PriorTerms:
    """Prior output: named scalar terms (KL or negative log-prob, already reduced to a
    per-batch mean) and anything a sampler or objective needs (``extras``)."""

    terms: dict[str, Tensor] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class Rendering:
    """Decoder output.

    recon: ``[b t c h w]`` reconstruction.
    rgb: ``[b t k c h w]`` per-slot appearance.
    mask_logits: ``[b t k h w]`` (softmax over k gives the masks).
    target: ``[b t c h w]`` the pixels ``recon`` corresponds to when the decoder renders
        a subset (frames or resolution) of the input; ``None`` means ``batch.frames``.
    """

    recon: Tensor | None = None
    rgb: Tensor | None = None
    mask_logits: Tensor | None = None
    target: Tensor | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def compose(cls, rgb: Tensor, mask_logits: Tensor, **fields: Any) -> Rendering:
        """The rendering of per-slot appearances ``rgb [b t k c h w]`` mixed by the masks
        (softmax over k of ``mask_logits [b t k h w]``): ``recon = Σ_k mask_k · rgb_k``.
        ``fields``: the other fields (``target``, ``extras``)."""
        recon = (mask_logits.softmax(dim=2).unsqueeze(3) * rgb).sum(dim=2)  # [b t c h w]
        return cls(recon=recon, rgb=rgb, mask_logits=mask_logits, **fields)

    @property
    def masks(self) -> Tensor | None:
        """``[b t k h w]`` softmax over k (slots compete for pixels)."""
        return None if self.mask_logits is None else self.mask_logits.softmax(dim=2)


@dataclass
class State:
    """Everything one forward pass has produced so far; every component receives it."""

    batch: Batch
    features: Features | None = None
    latents: Latents | None = None
    prior: PriorTerms | None = None
    rendering: Rendering | None = None
    losses: dict[str, Tensor] = field(default_factory=dict)

    def get(self, path: str) -> Any:
        """Read a dotted field such as ``"latents.frames"``; ``None`` if absent."""
        obj: Any = self
        for part in path.split("."):
            if obj is None:
                return None
            obj = obj.get(part) if isinstance(obj, dict) else getattr(obj, part, None)
        return obj

    @property
    def target(self) -> Tensor:
        """The pixels the rendering should match."""
        r = self.rendering
        return r.target if r is not None and r.target is not None else self.batch.frames

    def segmentation(self) -> Tensor | None:
        """Predicted soft masks ``[b t k h w]`` for the whole input: decoder masks first,
        then grouper masks; ``None`` if the model predicts none."""
        r = self.rendering
        if r is not None and r.mask_logits is not None and r.target is None:
            return r.masks
        if self.latents is not None and self.latents.masks is not None:
            return self.latents.masks
        if r is not None and r.mask_logits is not None:
            return r.masks
        return None


_RECORDS = {"batch": Batch, "features": Features, "latents": Latents, "prior": PriorTerms, "rendering": Rendering}

#: The fields of each record a component may name in ``needs``/``provides``
#: (``"latents.frames"``); checked when a component registers.
RECORD_FIELDS: dict[str, tuple[str, ...]] = {
    name: tuple(f.name for f in dataclasses.fields(cls)) for name, cls in _RECORDS.items()
}
#: The fields that are dicts, so a path may go one level deeper (``"batch.extras.counts"``).
_DICT_FIELDS = {
    f"{name}.{f.name}" for name, cls in _RECORDS.items() for f in dataclasses.fields(cls) if f.default_factory is dict
}


def valid_paths() -> list[str]:
    """Every ``record.field`` path, for messages."""
    return [f"{record}.{f}" for record, fields in RECORD_FIELDS.items() for f in fields]


def path_problem(path: str) -> str | None:
    """``None`` if ``path`` names a State field (``record.field``, or a key inside a dict
    field such as ``"rendering.extras.rotating"``), else what is wrong with it."""
    parts = path.split(".") if isinstance(path, str) else []
    if len(parts) < 2 or parts[0] not in RECORD_FIELDS:
        return f"{path!r} does not start with a record ({', '.join(RECORD_FIELDS)}) and a field"
    record, fld = parts[0], parts[1]
    if fld not in RECORD_FIELDS[record]:
        return f"{path!r}: {record} has no field {fld!r} (its fields: {', '.join(RECORD_FIELDS[record])})"
    if len(parts) > 2 and f"{record}.{fld}" not in _DICT_FIELDS:
        return f"{path!r}: {record}.{fld} is not a dict, so a path cannot go inside it"
    if not all(parts):
        return f"{path!r} has an empty part"
    return None
