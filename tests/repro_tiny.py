"""A tiny spec for tests of ``ocf eval`` and ``ocf repro``: the demo's Slot Attention on 24
generated 16×16 images, a few steps."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def tiny_spec(tmp: Path, steps: int = 3, name: str = "tiny.yaml") -> Path:
    """Write the tiny spec into ``tmp`` (its data file beside it) and return its path."""
    spec = yaml.safe_load((ROOT / "configs" / "slot_attention" / "demo.yaml").read_text())
    spec["name"] = "tiny"
    spec["data"].update(
        path=str(tmp / "tiny_shapes_16.h5"),
        resolution=[16, 16],
        in_memory=True,
        generate={"n": 24, "seed": 0, "options": {"resolution": 16, "min_objects": 2, "max_objects": 3}},
    )
    spec["model"]["grouper"].update(slot_dim=16, mlp_hidden=16, iterations=1)
    spec["model"]["encoder"]["channels"] = [8, 8]
    spec["model"]["decoder"]["channels"] = [8, 8]
    spec["train"].update(steps=steps, batch_size=4, log_every=1, image_every=0, checkpoint_every=steps)
    spec["eval"]["batch_size"] = 8
    path = tmp / name
    path.write_text(yaml.safe_dump(spec))
    return path
