"""Slot Attention's expected results (``ocf repro --list``)."""

from ocf.results import Result

RESULTS = [
    Result(
        name="demo",
        spec="slot_attention/demo.yaml",
        seeds=[0, 1, 2, 3, 4],
        metric="fg_ari",
        mean=0.5,
        floor="untrained + 0.2",
        shows="`make demo`: Slot Attention separates the 2-3 procedural shapes of each image within the demo's "
        "900 CPU steps, on every seed.",
    ),
    Result(
        name="slot_attention_shapes",
        spec="slot_attention/shapes_32.yaml",
        seeds=[0, 1, 2],
        metric="fg_ari",
        mean=0.7,
        floor="untrained + 0.2",
        threads=2,
        max_minutes=30,
        shows="Slot Attention segments 32x32 procedural scenes of 1-4 shapes at CPU scale.",
    ),
]
