"""SAVi and SAVi++ (Kipf et al., 2022; Elsayed et al., 2022) — Slot Attention for video with
a predictor between frames, conditioned on first-frame boxes or centres and trained to
reconstruct frames, optical flow or depth — as an ocf plugin.  Builds on ``slot_attention``."""

from ocf.hookspecs import hookimpl


@hookimpl
def ocf_register_components(registry):
    from ocf_savi.decoder import SAViDecoder, SAViReconstruction
    from ocf_savi.grouper import SAViGrouper

    registry.register(SAViGrouper, SAViDecoder, SAViReconstruction)
