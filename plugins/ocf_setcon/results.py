"""SetCon's expected results (``ocf repro --list``): the decoder probe on the frozen encoder and
grouper of a pretext run, against the same probe on the slot-wise contrastive control."""

from ocf.results import Result, Run

PROBE = "setcon/probe_32.yaml"

RESULTS = [
    Result(
        name="setcon_probe",
        spec=PROBE,
        init_from=Run(spec="setcon/moving_sprites_32.yaml"),
        seeds=[0, 1, 2],
        metric="fg_ari",
        floor="baseline + 0.2",
        baseline="setcon_slot_contrast_probe",
        threads=2,
        max_minutes=30,
        shows="SetCon's set-level contrastive pretext makes slots a decoder probe can segment (FG-ARI of the "
        "probe's masks over whole clips), by 0.2 more than the slot-wise contrastive control.",
    ),
    Result(
        name="setcon_slot_contrast_probe",
        spec=PROBE,
        overrides=["model.grouper.set_dim=null"],
        init_from=Run(spec="setcon/slot_contrast_32.yaml"),
        seeds=[0, 1, 2],
        metric="fg_ari",
        shows="The control setcon_probe is measured against: the same model and probe, pretrained with a "
        "slot-wise InfoNCE.",
    ),
]
