"""GENESIS-v2's expected results (``ocf repro --list``)."""

from ocf.results import Result

#: the original GENESIS-v2 widths at 32x32: UNet filters 64, latent 64, decoder 4 x 64
ORIGINAL_WIDTHS = ["model.encoder.filters=64", "model.grouper.latent_dim=64", "model.decoder.channels=[64,64,64,64]"]

RESULTS = [
    Result(
        name="genesis_shapes",
        spec="genesis/shapes_32.yaml",
        overrides=ORIGINAL_WIDTHS + ["eval.metric_options.fg_ari.masks=decoder"],
        seeds=[0, 1, 2],
        metric="fg_ari",
        steps=2000,
        mean=0.30,
        threads=2,
        max_minutes=30,
        shows="GENESIS-v2 at the original's widths segments 32x32 procedural shapes (1-4 objects) with its "
        "decoder's masks within 2,000 CPU steps (the budget the original was measured at).",
        evidence="The original GENESIS-v2 code (segregate-relate-imagine's copy), at these widths, data file, GECO "
        "settings and 2,000 steps, reaches decoder-mask FG-ARI "
        "0.32 ± 0.02 over 4 seeds, with its IC-SBP masks' FG-ARI at the untrained model's 0.23; the "
        "0.5 asked for in issue 19 is beyond the original at this budget, so 0.30 is the target.",
    ),
]
