"""Pretrained weights from a local file: read a safetensors file or a PyTorch checkpoint
(``torch.load(weights_only=True)``), bring a released checkpoint's keys to timm's layout (which ocf's
ViT module shares), and
refuse a file that does not match the model, naming its first missing, unexpected and
mis-shaped keys.

Key layouts handled (facts about the released checkpoints):

- nesting: a checkpoint holding several state dicts is opened at ``teacher`` (DINO and DINOv2
  training checkpoints; ``student`` on request), ``model`` (MAE) or ``state_dict``;
- prefixes: ``module.`` (DistributedDataParallel) is removed; when keys start with
  ``backbone.`` (DINO's multi-crop wrapper), only those are kept, without it, which drops the
  projection heads (``head.``, ``dino_head.``, ``ibot_head.``);
- parts a frozen encoder does not use: ``mask_token`` (DINOv2, MAE), the MAE decoder
  (``decoder_*``) and a classifier or projection ``head.``;
- DINOv2 with registers: ``register_tokens`` become timm's ``reg_token``, and the class token's
  position embedding is folded into ``cls_token`` (timm's register models give the class and
  register tokens no position embedding);
- a position embedding for another patch grid is resampled to the model's grid.
"""

from __future__ import annotations

import argparse
import hashlib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ocf.errors import MissingDependencyError, UserError
from ocf_vit.model import resample_pos_embed as resample_pos_embed_rows

#: Entries of a checkpoint that hold the backbone's state dict, tried in this order.
NESTED_KEYS = ("teacher", "model", "state_dict")
#: Key prefixes of parts a frozen encoder does not use; dropped when the model has no such key.
UNUSED_PREFIXES = ("mask_token", "decoder_", "decoder.", "head.")
#: How many keys of each kind a mismatch message lists.
SHOWN = 5


class WeightsError(UserError):
    """A weights file that is missing, unreadable, or does not match the model."""


def read_checkpoint(path: Path) -> Any:
    """The object stored in ``path``: a safetensors file (by its ``.safetensors`` suffix) or a
    PyTorch checkpoint loaded with ``weights_only=True``; a WeightsError naming the file when
    it is missing or cannot be read."""
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as exc:
            raise MissingDependencyError(f"reading {path} needs safetensors: pip install 'ocf[vit]' ({exc})") from exc
        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:
            raise WeightsError(f"weights file {path} is not a readable safetensors file: {exc}") from exc
    try:
        # training checkpoints store their command-line arguments as an argparse.Namespace
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(
            f"weights file {path} is not a readable PyTorch state dict (loaded with weights_only=True, which "
            f"refuses pickled code): {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc


def select_state_dict(obj: Any, path: Path, key: str | None = None) -> dict[str, Tensor]:
    """The tensors of the backbone's state dict inside a checkpoint: the entry ``key`` when
    given, else the first of :data:`NESTED_KEYS` present, repeatedly, until the values are
    tensors."""
    if key is not None:
        if not isinstance(obj, Mapping) or key not in obj:
            have = ", ".join(map(str, obj)) if isinstance(obj, Mapping) else type(obj).__name__
            raise WeightsError(f"weights file {path} has no entry {key!r} (checkpoint_key); it has {have}")
        obj = obj[key]
    while isinstance(obj, Mapping) and not any(isinstance(v, Tensor) for v in obj.values()):
        nested = next((k for k in NESTED_KEYS if isinstance(obj.get(k), Mapping)), None)
        if nested is None:
            break
        obj = obj[nested]
    if not isinstance(obj, Mapping) or not any(isinstance(v, Tensor) for v in obj.values()):
        what = ", ".join(map(str, list(obj)[:10])) if isinstance(obj, Mapping) else type(obj).__name__
        raise WeightsError(f"weights file {path} holds no state dict of tensors (found: {what})")
    return {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}


def normalise_keys(state: dict[str, Tensor], model_keys: set[str]) -> dict[str, Tensor]:
    """Released key layouts → timm's: strip ``module.``, keep only ``backbone.`` keys when
    there are any, drop unused parts the model does not have, convert DINOv2 registers."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if any(k.startswith("backbone.") for k in state):
        state = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    state = {k: v for k, v in state.items() if k in model_keys or not k.startswith(UNUSED_PREFIXES)}
    if "register_tokens" in state and "reg_token" in model_keys:
        state["reg_token"] = state.pop("register_tokens")
        if "cls_token" in state and "pos_embed" in state:
            state["cls_token"] = state["cls_token"] + state["pos_embed"][:, :1]
            state["pos_embed"] = state["pos_embed"][:, 1:]
    return state


def resample_pos_embed(state: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """The file's absolute position embedding resampled (bicubic) to the model's patch grid
    when the two token counts differ and the file's is a square grid."""
    mine, theirs = getattr(model, "pos_embed", None), state.get("pos_embed")
    if mine is None or theirs is None or theirs.dim() != 3 or theirs.shape == mine.shape:
        return state
    prefix = 0 if getattr(model, "no_embed_class", False) else getattr(model, "num_prefix_tokens", 1)
    side = math.isqrt(theirs.shape[1] - prefix)
    if side * side != theirs.shape[1] - prefix or theirs.shape[2] != mine.shape[2]:
        return state  # reported as a shape mismatch
    resampled = resample_pos_embed_rows(theirs, (side, side), tuple(model.patch_embed.grid_size), prefix)
    return {**state, "pos_embed": resampled}


def mismatch(state: dict[str, Tensor], expected: dict[str, Tensor]) -> list[str]:
    """What differs between a state dict and the model's, first :data:`SHOWN` of each kind:
    missing keys, unexpected keys, shape mismatches (each with its shapes)."""

    def listing(items: list[str]) -> str:
        more = f", ... and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
        return ", ".join(items[:SHOWN]) + more

    missing = [f"{k} {list(v.shape)}" for k, v in expected.items() if k not in state]
    unexpected = [f"{k} {list(v.shape)}" for k, v in state.items() if k not in expected]
    shapes = [
        f"{k}: file {list(state[k].shape)}, model {list(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {listing(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {listing(unexpected)}")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatches: {listing(shapes)}")
    return problems


def load_weights(model: nn.Module, path: str | Path, *, key: str | None = None, arch: str = "") -> str:
    """Load the weights file ``path`` into ``model`` (strictly: every key, every shape);
    returns the file's SHA-256.  A WeightsError naming the file, and the first missing,
    unexpected and mis-shaped keys, when it does not match."""
    path = Path(path)
    expected = model.state_dict()
    state = select_state_dict(read_checkpoint(path), path, key)
    state = resample_pos_embed(normalise_keys(state, set(expected)), model)
    problems = mismatch(state, expected)
    if problems:
        raise WeightsError(f"weights file {path} does not match {arch or 'the model'}: " + "; ".join(problems))
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})
    return file_digest(path)


def file_digest(path: Path) -> str:
    """``sha256:<hex>`` of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"
