"""``ocf features extract``: run a spec's frozen encoder once over its data file and write a copy
of the file with the tokens as an extra; ``ocf features bench``: the speed of a training step with
and without that cache, in one process.

The output is a complete data file of the source's layout: every dataset and root attribute of the
source is copied (only the samples of ``--split`` when given, their splits renumbered), and the
extra ``NAME [N T P D]`` (axes ``n t p d``, one chunk per frame, LZF-compressed) holds the tokens
with the encoder's :class:`~ocf.features.CacheIdentity` in its ``ocf_features`` attribute and in
the root ``metadata`` under ``features``. It is written beside the target under a temporary name
and renamed at the end, so a failure leaves no file under the final name."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from ocf.components import BuildContext
from ocf.data import format as fmt
from ocf.data.loader import H5Dataset
from ocf.errors import UserError
from ocf.features import IDENTITY_ATTR, CacheIdentity, identity_of
from ocf.run.data import ensure_dataset, registry_of
from ocf.run.files import check_output_file, temporary_name, writing
from ocf.run.setup import pick_device
from ocf.spec import ResolvedSpec

DTYPES = {"float32": np.float32, "float16": np.float16}
BLOCK = 64  # samples copied per read when a split is taken


def build_encoder(resolved: ResolvedSpec) -> tuple[torch.nn.Module, CacheIdentity]:
    """The spec's encoder alone, built as training builds it (seeded by ``train.seed``) but computing
    its tokens (a ``cache`` option is ignored), in evaluation mode, and its identity; a UserError
    when it cannot be cached."""
    choice = next((c for c in resolved.components if c.stage == "encoder"), None)
    if choice is None:
        raise UserError("the spec has no model.encoder whose features could be extracted")
    params = choice.params
    if getattr(params, "cache", None) is not None:
        params = params.model_copy(update={"cache": None})
    d = resolved.spec.data
    ctx = BuildContext(
        channels=d.channels, frames=d.frames, resolution=tuple(d.resolution), registry=resolved.registry, data=d
    )
    torch.manual_seed(resolved.spec.train.seed)
    encoder = ctx.construct(choice.cls, params, kind=choice.kind, name=choice.name, where="model.encoder")
    return encoder.eval(), identity_of(encoder, "model.encoder")


def select(info: fmt.DatasetInfo, splits: list[str]) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
    """The sample indices of ``splits`` (sorted union; None: the whole file) and each split's
    positions among them."""
    if not splits:
        return None, {}
    chosen = {s: info.split_indices(s) for s in splits}
    union = np.unique(np.concatenate(list(chosen.values())))
    return union, {s: np.searchsorted(union, idx) for s, idx in chosen.items()}


def check_target(out: Path, source: Path, name: str, force: bool) -> None:
    """Refuse an existing ``out`` without ``force``, ``out`` being the source, an extra ``name``
    the source already has, and a place that cannot be written."""
    if out.exists() and out.resolve() == source.resolve():
        raise UserError(f"--out {out} is the data file the features are extracted from; choose another path")
    if out.exists() and not force:
        raise UserError(f"{out} exists; pass --force to replace it, or choose another --out")
    with h5py.File(source, "r") as f:
        if name in f:
            raise UserError(f"{source} already has a dataset {name!r}; choose another --name for the features")
    check_output_file(out, "features file")


def copy_source(src: h5py.File, dst: h5py.File, n: int, indices: np.ndarray | None, splits: dict) -> None:
    """Every root dataset, group and attribute of ``src``; with ``indices``, the datasets with a
    leading sample axis keep only those samples and ``splits`` replaces the split group."""
    for key, value in src.attrs.items():
        dst.attrs[key] = value
    for key, obj in src.items():
        if indices is None or (isinstance(obj, h5py.Group) and key != "splits"):
            src.copy(obj, dst, name=key)
        elif isinstance(obj, h5py.Dataset) and obj.ndim and obj.shape[0] == n:
            _copy_rows(obj, dst, key, indices)
        elif isinstance(obj, h5py.Dataset):
            src.copy(obj, dst, name=key)
    if indices is not None and splits:
        group = dst.create_group("splits")
        for split, positions in splits.items():
            group.create_dataset(split.replace("/", "_"), data=positions.astype(np.int64))


def _copy_rows(ds: h5py.Dataset, dst: h5py.File, key: str, indices: np.ndarray) -> None:
    chunks = None if ds.chunks is None else (min(ds.chunks[0], len(indices)), *ds.chunks[1:])
    out = dst.create_dataset(
        key,
        shape=(len(indices), *ds.shape[1:]),
        dtype=ds.dtype,
        chunks=chunks,
        compression=ds.compression,
        compression_opts=ds.compression_opts,
        shuffle=ds.shuffle,
    )
    for k, v in ds.attrs.items():
        out.attrs[k] = v
    for i in range(0, len(indices), BLOCK):
        idx = indices[i : i + BLOCK]
        rows = ds[int(idx[0]) : int(idx[-1]) + 1]
        out[i : i + len(idx)] = rows[idx - idx[0]]


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="features", unit="sample", file=sys.stderr, dynamic_ncols=True, disable=not enabled)


def write_tokens(
    resolved: ResolvedSpec, source: Path, dst: h5py.File, todo: np.ndarray, encoder, identity, options: dict
) -> h5py.Dataset:
    """Run ``encoder`` over the samples ``todo`` of ``source`` and write their tokens to ``dst``."""
    spec = resolved.spec
    ds = H5Dataset(source, split="all", frames=None, in_memory=False)
    shape = (len(todo), ds.info.t, identity.tokens, identity.dim)
    out = dst.create_dataset(
        options["name"],
        shape=shape,
        dtype=options["dtype"],
        chunks=(1, 1, *shape[2:]),
        compression="lzf",
        shuffle=True,
    )
    out.attrs["axes"] = "n t p d"
    out.attrs[IDENTITY_ATTR] = identity.to_json()
    device = pick_device(spec.train)
    encoder.to(device)
    lo, hi = (float(v) for v in spec.data.value_range)
    with _progress(len(todo), options["progress"]) as bar, torch.no_grad():
        for i in range(0, len(todo), options["batch_size"]):
            frames = ds.get_batch([int(j) for j in todo[i : i + options["batch_size"]]]).frames.to(device)
            if (lo, hi) != (0.0, 1.0):  # the range the model's stages see (Model.to_model_range)
                frames = frames * (hi - lo) + lo
            out[i : i + len(frames)] = encoder.encode_frames(frames).cpu().numpy().astype(options["dtype"])
            bar.update(len(frames))
    ds.close()
    return out


def extract(
    resolved: ResolvedSpec,
    out: str | os.PathLike,
    *,
    splits: list[str] = (),
    name: str = "features",
    force: bool = False,
    batch_size: int | None = None,
    dtype: str = "float32",
    progress: bool = True,
) -> dict[str, Any]:
    """Write the features file ``out`` (see the module docstring); returns what was written."""
    spec, out = resolved.spec, Path(out)
    if not name or "/" in name or name in ("frames", "masks", "splits", "image", "mask"):
        raise UserError(f"--name {name!r}: choose a dataset name that is not frames, masks, splits, image or mask")
    if dtype not in DTYPES:
        raise UserError(f"--dtype {dtype!r}: choose float32 or float16")
    if spec.train.threads:
        torch.set_num_threads(spec.train.threads)
    encoder, identity = build_encoder(resolved)
    source = ensure_dataset(spec, registry_of(resolved))
    check_target(out, source, name, force)
    info = fmt.read_info(source)
    if (info.h, info.w, info.c) != (*spec.data.resolution, spec.data.channels):
        raise UserError(
            f"{source} holds {info.h}x{info.w}x{info.c} frames but the spec's data says "
            f"{spec.data.resolution[0]}x{spec.data.resolution[1]}x{spec.data.channels}"
        )
    indices, split_positions = select(info, list(splits))
    todo = np.arange(info.n) if indices is None else indices
    options = {"name": name, "dtype": DTYPES[dtype], "batch_size": batch_size or spec.train.batch_size}
    options["progress"] = progress
    tmp = temporary_name(out)
    with writing(out, "write the features file"):
        try:
            with h5py.File(source, "r") as src, h5py.File(tmp, "w") as dst:
                copy_source(src, dst, info.n, indices, split_positions)
                write_tokens(resolved, source, dst, todo, encoder, identity, options)
                _record(dst, name, identity, source, list(splits), dtype)
            os.replace(tmp, out)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
    return {
        "path": str(out),
        "name": name,
        "shape": [len(todo), info.t, identity.tokens, identity.dim],
        "dtype": dtype,
        "identity": asdict(identity),
        "source": str(source),
    }


def _record(dst: h5py.File, name: str, identity: CacheIdentity, source: Path, splits: list[str], dtype: str) -> None:
    """The identity and where the tokens came from, in the root ``metadata`` under ``features``."""
    try:
        metadata = json.loads(dst.attrs["metadata"]) if "metadata" in dst.attrs else {}
    except (TypeError, ValueError):
        metadata = {}
    entry = {**asdict(identity), "source": str(source), "splits": splits or ["all"], "dtype": dtype}
    metadata.setdefault("features", {})[name] = entry
    dst.attrs["metadata"] = json.dumps(metadata, sort_keys=True)


def cache_overrides(path: str | os.PathLike, name: str = "features") -> list[str]:
    """The overrides that make a spec train on the features file ``path``: its data file, the
    extra declared with its per-sample shape, and the encoder reading it."""
    with h5py.File(path, "r") as f:
        if name not in f:
            raise UserError(f"{path} has no extra {name!r}; give the --name it was extracted with")
        shape = list(f[name].shape[1:])
    return [f"data.path={path}", f"data.extras.{name}=[{','.join(map(str, shape))}]", f"model.encoder.cache={name}"]


def bench_cache(load, spec_path: str, overrides: list[str], path: str, *, name: str = "features", **bench_args) -> dict:
    """``ocf bench``'s record of ``spec_path`` on the features file ``path`` computing the encoder's tokens
    and reading them from the cache, measured in this process one after the other, and the ratio
    of their seconds per step. ``load(spec_path, overrides)`` resolves a spec."""
    from ocf.run import bench

    computed = load(spec_path, [*overrides, f"data.path={path}"])
    cached = load(spec_path, [*overrides, *cache_overrides(path, name)])
    records = {"computed": bench.run(computed, **bench_args), "cached": bench.run(cached, **bench_args)}
    sec = {k: r["train"]["sec_per_step"] for k, r in records.items()}
    return {**records, "speedup": sec["computed"] / sec["cached"], "overrides": cache_overrides(path, name)}
