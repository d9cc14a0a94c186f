"""The feature cache: ``ocf features extract`` writes a frozen encoder's tokens into a copy of the
data file, and ``vit.encoder``'s ``cache`` option reads them instead of running the ViT."""

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from ocf import plugins
from ocf.assembly import build
from ocf.cli import main
from ocf.components import BuildContext
from ocf.data.loader import H5Dataset
from ocf.errors import UserError
from ocf.features import IDENTITY_ATTR, identity_of, state_digest
from ocf.records import State
from ocf.spec import read_yaml, resolve
from ocf_vit.encoder import ViTEncoder
from ocf_vit.random_weights import write_random_weights

ROOT = Path(__file__).resolve().parents[1]
ARCH = "vit_tiny_patch16_224"
TINY = {"patch_size": 4, "embed_dim": 64, "depth": 2, "num_heads": 2}
N = 16


def spec_dict(folder: Path, weights: Path, **data) -> dict:
    d = read_yaml(ROOT / "configs" / "vit" / "shapes_32.yaml")
    d["data"].update(path=str(folder / "shapes.h5"), generate={"n": N, "seed": 0}, **data)
    d["model"]["encoder"].update(weights=str(weights), frozen=True)
    d["train"].update(steps=1, batch_size=8, log_every=1)
    d["eval"] = {"metrics": ["mse"], "batch_size": 8}
    return d


def write_spec(d: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(d))
    return path


def cached(d: dict, features: Path, name: str = "features") -> dict:
    d = json.loads(json.dumps(d))
    d["data"].update(path=str(features), extras={name: [1, 64, 64]}, generate=None)
    d["model"]["encoder"]["cache"] = name
    return d


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A random-weights file, a spec on a small shapes file and the features file extracted from it."""
    folder = tmp_path_factory.mktemp("cache")
    weights = write_random_weights(ARCH, folder / "vit.safetensors", seed=0, arch_args={**TINY, "img_size": 32})
    d = spec_dict(folder, weights)
    spec = write_spec(d, folder / "spec.yaml")
    out = folder / "features.h5"
    assert main(["features", "extract", str(spec), "--out", str(out), "--quiet", "--batch-size", "5"]) == 0
    return folder, weights, d, spec, out


def model_of(d: dict, seed: int = 0):
    torch.manual_seed(seed)
    return build(resolve(d, plugins.default().registry), dry_run=False)


def test_cached_features_equal_the_encoders_own(setup):
    folder, weights, d, _, out = setup
    model = model_of(d).eval()
    batch = H5Dataset(out, split="all").get_batch(list(range(N)))
    with torch.no_grad():
        expected = model.encoder(State(batch)).tokens
    with h5py.File(out, "r") as f, h5py.File(folder / "shapes.h5", "r") as src:
        ds = f["features"]
        assert ds.shape == (N, 1, 64, 64) and ds.dtype == np.float32
        assert ds.attrs["axes"] == "n t p d" and ds.chunks == (1, 1, 64, 64) and ds.compression == "lzf"
        stored = torch.from_numpy(ds[:])
        identity = json.loads(ds.attrs[IDENTITY_ATTR])
        metadata = json.loads(f.attrs["metadata"])
        for key in ("frames", "masks", "counts", "splits/train", "splits/test"):  # the source, copied
            np.testing.assert_array_equal(f[key][:], src[key][:])
        assert f["frames"].chunks == src["frames"].chunks
    torch.testing.assert_close(stored, expected, rtol=1e-5, atol=1e-5)
    assert identity["weights_sha256"] == state_digest(model.encoder.vit)
    assert identity["backbone"] == {
        "arch": ARCH,
        "arch_args": TINY,
        "block": 1,
        "final_norm": False,
        "resolution": [32, 32],
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "value_range": [0.0, 1.0],
    }
    assert identity["info"]["weights"] == str(weights) and identity["grid"] == [8, 8]
    assert metadata["features"]["features"]["weights_sha256"] == identity["weights_sha256"]
    assert metadata["generator"] == "shapes"  # the source's metadata is kept


def test_the_value_range_the_model_sees_is_the_one_cached(setup, tmp_path):
    _, weights, _, _, plain = setup
    d = spec_dict(tmp_path, weights, value_range=[-1.0, 1.0])
    out = tmp_path / "f.h5"
    assert main(["features", "extract", str(write_spec(d, tmp_path / "s.yaml")), "--out", str(out), "--quiet"]) == 0
    model = model_of(d).eval()
    batch = H5Dataset(out, split="all").get_batch(list(range(N)))
    with torch.no_grad():
        expected = model.encoder(State(model.to_model_range(batch))).tokens
    with h5py.File(out, "r") as f, h5py.File(plain, "r") as g:
        stored = torch.from_numpy(f["features"][:])
        assert json.loads(f["features"].attrs[IDENTITY_ATTR])["backbone"]["value_range"] == [-1.0, 1.0]
        assert not torch.allclose(stored, torch.from_numpy(g["features"][:]), atol=1e-3)
    torch.testing.assert_close(stored, expected, rtol=1e-5, atol=1e-5)


def test_a_training_step_on_the_cache_gives_the_same_loss_without_running_the_vit(setup, monkeypatch):
    from ocf.run import train

    folder, _, d, _, out = setup
    plain = json.loads(json.dumps(d))
    plain["data"].update(path=str(out), generate=None)
    batch = H5Dataset(out, split="train").get_batch(list(range(8)))
    reference = model_of(plain)(batch).losses
    runs = {
        "plain": train.run(resolve(plain, plugins.default().registry), out=str(folder / "run_plain"), progress=False)
    }

    def no_vit(*args, **kwargs):
        raise AssertionError("the ViT ran although the tokens are cached")

    monkeypatch.setattr(ViTEncoder, "embed", no_vit)
    model = model_of(cached(d, out))
    torch.testing.assert_close(model(batch).losses, reference, rtol=1e-5, atol=1e-6)
    spec = resolve(cached(d, out), plugins.default().registry)
    runs["cached"] = train.run(spec, out=str(folder / "run_cached"), progress=False)
    losses = {}
    for key, run in runs.items():
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        losses[key] = next(r["loss"] for r in rows if "loss" in r)
    assert losses["cached"] == pytest.approx(losses["plain"], rel=1e-5)
    trained = torch.load(runs["cached"] / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert any(k.startswith("encoder.vit.") for k in trained)  # the weights still load (for the digest)


def test_other_weights_or_another_block_are_refused_naming_both_digests(setup, tmp_path, capsys):
    folder, _, d, _, out = setup
    other = write_random_weights(ARCH, tmp_path / "other.pt", seed=1, arch_args={**TINY, "img_size": 32})
    spec = write_spec(cached(d, out), tmp_path / "cached.yaml")
    with h5py.File(out, "r") as f:
        stored = json.loads(f["features"].attrs[IDENTITY_ATTR])["weights_sha256"]
    ctx = BuildContext(channels=3, frames=1, resolution=(32, 32))
    params = ViTEncoder.Spec(arch=ARCH, arch_args=TINY, weights=str(other))
    mine = state_digest(ViTEncoder(params, ctx).vit)
    assert mine != stored
    assert main(["build", str(spec), f"model.encoder.weights={other}"]) == 2
    err = capsys.readouterr().err
    assert f"{out}: extra 'features' was extracted with weights {stored}, but model.encoder has weights {mine}" in err
    assert "--force" in err and "Traceback" not in err
    assert main(["build", str(spec), "model.encoder.block=0"]) == 2
    assert "(block: file 1, encoder 0)" in capsys.readouterr().err  # fewer blocks: other weights too
    assert main(["build", str(spec), "model.encoder.std=[0.5,0.5,0.5]"]) == 2
    assert f"with the same weights ({stored}) but another backbone (std: file [0.229" in capsys.readouterr().err
    assert main(["build", str(spec), "model.encoder.frozen=false"]) == 2
    assert "model.encoder.frozen: a fine-tuned ViT (frozen: false) changes during training" in capsys.readouterr().err
    assert main(["build", str(spec), "data.extras={}"]) == 2
    assert "declare it as data.extras.features=[T,64,64]" in capsys.readouterr().err
    assert main(["build", str(spec), "model.encoder.cache=feats", "data.extras={feats: [1, 64, 64]}"]) == 2
    assert f"model.encoder.cache: {out} has no extra 'feats'" in capsys.readouterr().err
    assert main(["build", str(spec)]) == 0  # the matching cache builds


def test_split_keeps_only_that_splits_samples(setup, tmp_path):
    folder, _, _, spec, full = setup
    out = tmp_path / "val.h5"
    assert (
        main(["features", "extract", str(spec), "--out", str(out), "--split", "val", "--split", "test", "--quiet"]) == 0
    )
    with h5py.File(folder / "shapes.h5", "r") as src, h5py.File(full, "r") as whole, h5py.File(out, "r") as f:
        val, test = src["splits/val"][:], src["splits/test"][:]
        keep = np.sort(np.concatenate([val, test]))
        assert sorted(f["splits"]) == ["test", "val"] and len(f["frames"]) == len(keep) == len(f["features"])
        np.testing.assert_array_equal(keep[f["splits/val"][:]], val)
        np.testing.assert_array_equal(keep[f["splits/test"][:]], test)
        np.testing.assert_array_equal(f["frames"][:], src["frames"][keep])
        np.testing.assert_array_equal(f["masks"][:], src["masks"][keep])
        np.testing.assert_array_equal(f["visibility"][:], src["visibility"][keep])
        np.testing.assert_allclose(f["features"][:], whole["features"][keep], rtol=1e-5, atol=1e-5)
        assert json.loads(f.attrs["metadata"])["features"]["features"]["splits"] == ["val", "test"]


def test_existing_out_and_unwritable_places_are_refused(setup, tmp_path, capsys):
    _, _, _, spec, _ = setup
    out = tmp_path / "f.h5"
    out.write_bytes(b"keep me")
    assert main(["features", "extract", str(spec), "--out", str(out), "--quiet"]) == 2
    assert f"{out} exists; pass --force to replace it" in capsys.readouterr().err
    assert out.read_bytes() == b"keep me"
    assert main(["features", "extract", str(spec), "--out", str(out), "--quiet", "--force", "--dtype", "float16"]) == 0
    with h5py.File(out, "r") as f:
        assert f["features"].dtype == np.float16
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["features", "extract", str(spec), "--out", str(blocker / "f.h5"), "--quiet"]) == 2
    assert f"{blocker} is a file, not a folder" in capsys.readouterr().err


def test_a_failure_midway_leaves_no_file(setup, tmp_path, monkeypatch):
    _, _, _, spec, _ = setup
    calls = []

    def fail_second(self, frames):
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return torch.zeros(frames.shape[0], frames.shape[1], 64, 64)

    monkeypatch.setattr(ViTEncoder, "encode_frames", fail_second)
    args = ["features", "extract", str(spec), "--out", str(tmp_path / "f.h5"), "--quiet", "--batch-size", "4"]
    assert main(args) == 130  # interrupted after the first batch was written
    assert len(calls) == 2 and list(tmp_path.iterdir()) == []


def test_an_encoder_that_declares_no_cache_is_refused():
    with pytest.raises(UserError, match="cannot be cached: it does not declare a frozen, deterministic output"):
        identity_of(torch.nn.Linear(2, 2))


def test_bench_reports_both_and_the_ratio(setup, capsys):
    _, _, _, spec, out = setup
    assert main(["features", "bench", str(spec), str(out), "--steps", "1", "--warmup", "0", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    sec = {k: record[k]["train"]["sec_per_step"] for k in ("computed", "cached")}
    assert record["speedup"] == pytest.approx(sec["computed"] / sec["cached"])
    assert record["overrides"][-1] == "model.encoder.cache=features"
