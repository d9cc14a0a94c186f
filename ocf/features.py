"""The feature cache: what a cached encoder declares, and how a cache file records and checks it.

An encoder whose output depends only on the frames and on weights that never change in training
(a frozen, deterministic backbone) can be run once over a dataset by ``ocf features extract``
(:mod:`ocf.run.features`), which stores its tokens as an extra ``[N T P D]`` (axes ``n t p d``).
Such an encoder implements two methods:

``cache_identity() -> CacheIdentity``
    what the tokens depend on: a description of the backbone (architecture, block, input size,
    normalisation, ...) and a digest of the weights that run (:func:`state_digest`). It raises a
    :class:`~ocf.errors.UserError` saying why when its output cannot be cached (e.g. not frozen).
``encode_frames(frames [b t c h w]) -> tokens [b t p d]``
    the tokens computed from the frames (in the model's value range), whatever the cache option.

The extra's ``ocf_features`` attribute holds the identity as JSON (also copied to the file's
``metadata`` under ``features``); a model reading the cache compares it with its own encoder's
(:func:`check_cache`) and refuses a mismatch.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ocf.errors import UserError

#: The attribute of the features extra that holds its :class:`CacheIdentity` (JSON).
IDENTITY_ATTR = "ocf_features"


@dataclass(frozen=True)
class CacheIdentity:
    """What cached tokens depend on. ``backbone`` and ``weights_sha256`` must match for a cache
    to be read; ``grid`` and ``dim`` give the token layout (``P = grid[0] * grid[1]``, ``D = dim``);
    ``info`` is recorded but not compared (e.g. the weights file it was loaded from)."""

    encoder: str
    backbone: dict[str, Any]
    weights_sha256: str
    grid: tuple[int, int]
    dim: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return int(self.grid[0] * self.grid[1])

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> CacheIdentity:
        d = json.loads(text)
        return cls(d["encoder"], d["backbone"], d["weights_sha256"], tuple(d["grid"]), int(d["dim"]), d.get("info", {}))


def state_digest(module: nn.Module) -> str:
    """``sha256:<hex>`` of ``module``'s state dict: every entry's name, dtype, shape and bytes, in
    name order. Equal weights give equal digests whatever file (or format) they came from."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{list(t.shape)}|".encode())
        digest.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return f"sha256:{digest.hexdigest()}"


def identity_of(encoder: nn.Module, where: str = "model.encoder") -> CacheIdentity:
    """``encoder.cache_identity()``; a UserError when the encoder cannot be cached."""
    if not (hasattr(encoder, "cache_identity") and hasattr(encoder, "encode_frames")):
        name = getattr(encoder, "name", type(encoder).__name__)
        raise UserError(
            f"{where}: {name} cannot be cached: it does not declare a frozen, deterministic output "
            "(no cache_identity/encode_frames methods); only such encoders (e.g. vit.encoder) can be"
        )
    return encoder.cache_identity()


def read_identity(path: str | os.PathLike, extra: str, where: str = "cache") -> CacheIdentity:
    """The identity stored with the extra ``extra`` of ``path``; a UserError starting with ``where``
    and naming the file when it is missing, has no such extra, or the extra was not written by
    ``ocf features extract``."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise UserError(
            f"{where}: {path} does not exist; the encoder's cache reads features from it: write it with "
            f"`ocf features extract SPEC --out {path}`"
        )
    try:
        with h5py.File(path, "r") as f:
            if extra not in f or not isinstance(f[extra], h5py.Dataset):
                have = ", ".join(k for k in f if isinstance(f[k], h5py.Dataset)) or "none"
                raise UserError(
                    f"{where}: {path} has no extra {extra!r} (it has {have}); write one with "
                    f"`ocf features extract SPEC --out FILE --name {extra}` and point data.path at FILE"
                )
            text = f[extra].attrs.get(IDENTITY_ATTR)
    except OSError as exc:
        raise UserError(f"{where}: {path} cannot be read as HDF5 ({exc})") from None
    if text is None:
        raise UserError(
            f"{where}: {path}: extra {extra!r} has no {IDENTITY_ATTR!r} attribute, so it was not written by "
            "`ocf features extract` and cannot be checked against the encoder"
        )
    return CacheIdentity.from_json(text)


def check_cache(path: str | os.PathLike, extra: str, mine: CacheIdentity, where: str = "model.encoder") -> None:
    """Refuse (UserError, starting ``<where>.cache:``) a cache whose backbone or weights differ from
    ``mine``, naming the file, both weights digests and every differing backbone entry with both values."""
    stored = read_identity(path, extra, f"{where}.cache")
    if (
        stored.encoder == mine.encoder
        and stored.backbone == mine.backbone
        and stored.weights_sha256 == mine.weights_sha256
    ):
        return
    keys = sorted(set(stored.backbone) | set(mine.backbone))
    diffs = [
        f"{k}: file {stored.backbone.get(k)!r}, encoder {mine.backbone.get(k)!r}"
        for k in keys
        if stored.backbone.get(k) != mine.backbone.get(k)
    ]
    if stored.encoder != mine.encoder:
        diffs.insert(0, f"encoder: file {stored.encoder}, {where} {mine.encoder}")
    if stored.weights_sha256 == mine.weights_sha256:
        what = f"the same weights ({mine.weights_sha256}) but another backbone"
    else:
        what = f"weights {stored.weights_sha256}, but {where} has weights {mine.weights_sha256}"
    raise UserError(
        f"{where}.cache: {path}: extra {extra!r} was extracted with {what}"
        + (f" ({'; '.join(diffs)})" if diffs else "")
        + f"; re-extract with `ocf features extract SPEC --out {path} --force`, or set {where}.cache=null"
    )
