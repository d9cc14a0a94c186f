"""pyro's AIR example (pyro-ppl/pyro, examples/air): its ``AIR`` model and guide trained by SVI with
TraceGraph_ELBO and per-parameter Adam, as its main.py does with the default arguments.

The example runs on the installed ``pyro-ppl`` (``pip install -e .[bench]`` installs the release the
checkout belongs to, 1.9.1); the checkout is the pyro repository at that release's commit (only
``examples/air`` is read).

Run-time patches: ``PATCHES`` below (nothing else differs from the checkout).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from benchmarks.originals import load, on_path, stub

PATCHES = (
    "CPU: main.py's default (use_cuda False)",
    "`visdom` is a stub module (main.py imports it for its optional visualisations), and so are `PIL` "
    "and ImageDraw when Pillow is absent (viz.py draws the visualisations), and `torchvision` when absent "
    "(pyro.contrib.examples.util imports it for the MNIST download main.py's loader uses)",
    "input: ocf's generated 50×50 moving-digits frames ([b 50 50] in [0, 1]) instead of multi-MNIST",
    "settings: main.py's defaults (3 steps, window 28, z_what 50, RNN 256, encoder and decoder nets [200], "
    "lr 1e-4, baselines lr 1e-3, z_pres prior 0.5 through make_prior), batch 64 (the whole batch given)",
)


def build(root: Path, batch):
    import pyro
    import pyro.optim as optim
    from pyro.infer import SVI, TraceGraph_ELBO

    stub("visdom")
    if importlib.util.find_spec("torchvision") is None:  # pyro.contrib.examples.util imports it for MNIST
        stub(
            "torchvision",
            datasets=stub("torchvision.datasets", MNIST=type("MNIST", (), {"mirrors": [], "resources": []})),
            transforms=stub("torchvision.transforms"),
        )
    try:
        import PIL  # noqa: F401
    except ImportError:
        stub("PIL", Image=None, ImageDraw=None)
    example = root / "examples" / "air"
    with on_path(example):
        main = load(example, "main")
        air_mod = load(example, "air")
    pyro.clear_param_store()
    x = batch.frames[:, 0, 0].contiguous()
    air = air_mod.AIR(
        num_steps=3,
        x_size=x.shape[-1],
        use_masking=True,
        use_baselines=True,
        z_what_size=50,
        use_cuda=False,
        window_size=28,
        rnn_hidden_size=256,
        encoder_net=[200],
        decoder_net=[200],
    )
    prior = main.make_prior(0.5)

    def per_param(name):
        return {"lr": 1e-3 if "bl_" in name else 1e-4}

    svi = SVI(air.model, air.guide, optim.Adam(per_param), loss=TraceGraph_ELBO())

    def step():  # main.py's svi.step with its z_pres prior (no annealing)
        return svi.step(x, batch_size=x.shape[0], z_pres_prior_p=lambda t: prior(t))

    return step, air
