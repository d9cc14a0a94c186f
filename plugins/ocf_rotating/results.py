"""Rotating Features' expected result (``ocf repro --list``)."""

from ocf.results import Control, Result, Run

SPEC = "rotating/4shapes_32_cpu.yaml"

RESULTS = [
    Result(
        name="rotating_4shapes",
        spec=SPEC,
        seeds=[0, 1, 2],
        metric="fg_ari",
        mean=0.30,
        floor="untrained + 0.2",
        control=Control(
            run=Run(spec=SPEC, overrides=["model.encoder.rotation_dims=1"]),
            ceiling=0.1,
            shows="one rotation dimension: the objects live in the orientations",
        ),
        shows="Rotating Features (n = 8) separate the four shapes of 4Shapes by the orientation of their "
        "features (ARI-BG, the core fg_ari).",
    ),
]
