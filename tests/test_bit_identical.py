"""Refactors must not change training: every shipped CPU spec, shrunk to a tiny dataset and a
few steps with a fixed seed, ends with exactly the parameters and losses recorded in
tests/golden/training.json.

The record was made before the run layer was reorganised (issue 18). Floating-point results
depend on the torch build and the CPU, so exact equality is asserted where the torch version
matches the record's; elsewhere the losses must agree to 1e-4 relative (a different build may
reorder sums, but a changed computation moves them far more than that).

Regenerate (only when a change *means* to alter training, and say so in the commit):
    python tests/test_bit_identical.py --write
"""

import hashlib
import json
import math
import sys
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden" / "training.json"
# the specs a CPU trains (paper-size specs and specs that need a downloaded file are left out)
SPECS = [
    "compositions/simone_sri.yaml",
    "compositions/slot_attention_sri.yaml",
    "genesis/shapes_32.yaml",
    "rotating/4shapes_32_cpu.yaml",
    "rotating/4shapes_rgbd_32_cpu.yaml",
    "rotating/cae_2shapes_32_cpu.yaml",
    "setcon/moving_sprites_32.yaml",
    "setcon/slot_contrast_32.yaml",
    "simone/moving_sprites_32.yaml",
    "slot_attention/demo.yaml",
    "slot_attention/shapes_32.yaml",
    "sqair/air_digits_32.yaml",
    "sqair/sqair_digits_32.yaml",
    "sri/genesis_baseline.yaml",
    "sri/genesis_sri.yaml",
]
STEPS = 3


def shrink(spec: dict, data_dir: Path) -> dict:
    """The spec with a tiny file of its own dataset, a small batch and STEPS steps."""
    data = spec["data"]
    data["path"] = str(data_dir / (Path(data["path"]).stem + ".h5"))
    data["generate"] = {**data.get("generate", {}), "n": 24}
    data["in_memory"] = True
    train = spec["train"]
    train.update(steps=STEPS, batch_size=4, log_every=1, image_every=0, checkpoint_every=STEPS, eval_every=0, seed=0)
    train.pop("init_from", None)
    train.pop("threads", None)
    if train.get("curriculum"):
        train["curriculum"]["every"] = 1
    return spec


def fingerprint(spec_name: str, work: Path) -> dict:
    from ocf.cli import main

    spec = shrink(yaml.safe_load((ROOT / "configs" / spec_name).read_text()), work / "data")
    path = work / (spec_name.replace("/", "-"))
    path.write_text(yaml.safe_dump(spec))
    run = work / ("run-" + spec_name.replace("/", "-").removesuffix(".yaml"))
    torch.set_num_threads(1)
    assert main(["train", str(path), "--out", str(run)]) == 0
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]
    # order-free: a renamed parameter key must not hide a changed value, nor a moved one fail
    digests = sorted(
        hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest() for t in state.values()
    )
    lines = [json.loads(row) for row in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [{k: v for k, v in sorted(row.items()) if k.startswith("loss")} for row in lines]
    return {"params": hashlib.sha256("".join(digests).encode()).hexdigest(), "losses": losses}


def record() -> dict:
    return json.loads(GOLDEN.read_text())


@pytest.mark.parametrize("spec_name", SPECS)
def test_training_is_unchanged(spec_name, tmp_path):
    golden = record()
    got = fingerprint(spec_name, tmp_path)
    want = golden["runs"][spec_name]
    assert len(got["losses"]) == len(want["losses"]) == STEPS
    if golden["torch"] == torch.__version__:
        assert got["losses"] == want["losses"], f"{spec_name}: losses changed"
        assert got["params"] == want["params"], f"{spec_name}: parameters after {STEPS} steps changed"
    else:
        for g, w in zip(got["losses"], want["losses"]):
            assert g.keys() == w.keys()
            for k in w:
                assert math.isclose(g[k], w[k], rel_tol=1e-4, abs_tol=1e-6), (spec_name, k, g[k], w[k])


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        runs = {s: fingerprint(s, Path(d)) for s in SPECS}
    GOLDEN.write_text(json.dumps({"torch": torch.__version__, "runs": runs}, indent=1) + "\n")
    print(f"wrote {GOLDEN}")
