"""Rotating Features on precomputed feature maps (the DINO setting): the generic
``data.extras`` option (shape checked against the file, faked in the dry run, sizes in
ctx.dims), ``ocf_rotating.data.add_features``, and a few training steps end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ocf import assembly, plugins
from ocf.data import make_dataset
from ocf.errors import UserError
from ocf.run.evaluate import evaluate_model
from ocf.run.train import run
from ocf.spec import resolve
from ocf_rotating.data import add_features

REGISTRY = plugins.default().registry


def feature_spec(path, shape=(3, 8, 8), **data):
    return {
        "name": "rot-features",
        "data": {
            "dataset": "hdf5",
            "path": str(path),
            "generate": None,
            "resolution": [16, 16],
            "channels": 1,
            "extras": {"features": list(shape)},
            **data,
        },
        "model": {
            "encoder": {"type": "rotating.encoder", "rotation_dims": 3, "hidden": 4, "linear": 8, "input": "features"},
            "decoder": {"type": "rotating.decoder", "output": "linear"},
            "grouper": {"type": "rotating.cluster", "n_init": 2},
            "objectives": [{"type": "mse"}],
        },
        "train": {"steps": 4, "batch_size": 4, "threads": 1, "log_every": 2, "image_every": 0, "checkpoint_every": 4},
        "eval": {"metrics": ["fg_ari", "mbo", "mse"], "batch_size": 4, "max_samples": 8},
    }


@pytest.fixture(scope="module")
def feature_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("rotfeat")
    images = make_dataset(
        REGISTRY, "nshapes", d / "images.h5", n=40, seed=0, options={"resolution": 16, "num_shapes": 2, "size": 6}
    )
    import h5py

    with h5py.File(images) as f:
        frames = torch.from_numpy(f["frames"][()]).float().div(255)[:, 0].permute(0, 3, 1, 2)  # [N 1 16 16]
    pooled = F.avg_pool2d(frames, 2)  # [N 1 8 8]: a stand-in for a feature extractor, with negative channels
    feats = torch.cat([pooled, 1 - pooled, -pooled], dim=1).numpy()
    return add_features(images, feats, d / "features.h5"), feats


def test_add_features_keeps_the_file_and_adds_the_extra(feature_file):
    path, feats = feature_file
    from ocf.data import H5Dataset

    ds = H5Dataset(path, split="train")
    batch = ds.get_batch([0, 1])
    assert batch.frames.shape == (2, 1, 1, 16, 16) and batch.masks.shape == (2, 1, 16, 16)
    assert torch.allclose(batch.extras["features"], torch.from_numpy(feats[ds.indices[:2]]))
    with pytest.raises(Exception, match="N = 40"):
        add_features(path, feats[:3], path.with_name("bad.h5"))


def test_data_extras_reach_the_components_and_the_dry_run(feature_file):
    path, _ = feature_file
    model = assembly.build(resolve(feature_spec(path), REGISTRY))  # dry run on faked features
    assert model.ctx.dims["batch.extras.features"] == (3, 8, 8)
    bad = feature_spec(path)
    del bad["data"]["extras"]
    with pytest.raises(Exception, match="data section"):
        assembly.build(resolve(bad, REGISTRY))


def test_file_must_hold_the_declared_extras(feature_file, tmp_path):
    path, _ = feature_file
    with pytest.raises(UserError, match=r"data.extras.features is \[3, 4, 4\] per sample but .* holds \[3, 8, 8\]"):
        run(resolve(feature_spec(path, shape=(3, 4, 4)), REGISTRY), out=str(tmp_path / "a"), progress=False)
    spec = feature_spec(path)
    spec["data"]["extras"] = {"dino": [3, 8, 8]}
    spec["model"]["encoder"]["features_key"] = "dino"
    with pytest.raises(UserError, match="no such extra"):
        run(resolve(spec, REGISTRY), out=str(tmp_path / "b"), progress=False)


def test_trains_and_evaluates_on_features(feature_file, tmp_path):
    path, feats = feature_file
    resolved = resolve(feature_spec(path), REGISTRY)
    run_dir = run(resolved, out=str(tmp_path / "run"), progress=False)
    from ocf.run.checkpoints import load_run

    _, model, _ = load_run(run_dir, REGISTRY)
    from ocf.data import H5Dataset

    batch = H5Dataset(path, split="test").get_batch([0, 1])
    with torch.no_grad():
        state = model(batch)
    assert state.rendering.recon.shape == state.target.shape == (2, 1, 3, 8, 8)  # the features, not the image
    assert torch.equal(state.target, batch.extras["features"].unsqueeze(1))
    # linear output (features may be negative): recon = w_c·‖z‖ + b_c, no sigmoid
    dec = model.decoder
    mag = state.rendering.extras["rotating"].square().sum(2).add(dec.spec.eps).sqrt()  # [b t c h w]
    assert torch.allclose(
        state.rendering.recon, mag * dec.output_weight.view(-1, 1, 1) + dec.output_bias.view(-1, 1, 1), atol=1e-6
    )
    assert state.latents.masks.shape == (2, 1, 3, 8, 8)  # 2 objects + background on the feature grid
    scores = evaluate_model(model, resolved, progress=False)
    assert set(scores) == {"fg_ari", "mbo", "mse"} and all(np.isfinite(v) for v in scores.values())
