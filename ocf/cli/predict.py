"""``ocf predict RUN INPUT --out DIR``: segment new images (or the clips of an HDF5 file)
with a trained run; the job is :func:`ocf.run.predict.predict`."""

from __future__ import annotations

from pathlib import Path

from ocf import plugins as ocf_plugins
from ocf.run.checkpoints import load_run
from ocf.run.predict import open_source, predict


def add_parser(sub, common) -> None:
    p = sub.add_parser(
        "predict",
        parents=[common],
        help="segment new images or an HDF5 file with a trained run",
        description="Apply a trained run to a folder of PNG/JPEG images (fitted to the run's resolution: centre-crop "
        "to its aspect ratio, then bilinear resize) or to an HDF5 file (clips for video runs). Writes "
        "OUT/masks/<name>.png label maps, OUT/overlays/<name>.png and OUT/predictions.h5 (frames, "
        "labels, soft masks, slots, reconstructions; axes in docs/training.md).",
    )
    p.add_argument("run_dir")
    p.add_argument("input", help="a folder of .png/.jpg/.jpeg images, or an HDF5 file")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--split", default=None, help="split of an HDF5 input (default: the whole file)")
    p.add_argument("--checkpoint", default=None, help="checkpoint file (default: the run's last)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_predict)


def run_predict(
    run_dir: str,
    input: str,
    out: str,
    *,
    split: str | None = None,
    checkpoint: str | None = None,
    progress: bool = True,
) -> Path:
    """Load the run, read the input, predict; print and return the HDF5 path."""
    resolved, model, ckpt = load_run(run_dir, ocf_plugins.default().registry, checkpoint)
    source = open_source(input, resolved, split, run_dir)
    meta = {"run": str(run_dir), "checkpoint": str(ckpt), "split": split}
    path = predict(model, resolved, source, out, meta=meta, progress=progress)
    print(f"{source.description} -> {Path(out) / 'masks'}, {Path(out) / 'overlays'}, {path}")
    return path


def cmd_predict(args) -> int:
    run_predict(
        args.run_dir, args.input, args.out, split=args.split, checkpoint=args.checkpoint, progress=not args.quiet
    )
    return 0
