"""FG-ARI of the grouper's own masks (``latents.masks``).

The core ``fg_ari`` scores the decoder's masks where the decoder renders them
(``masks: auto``).  GENESIS-v2's published "FG-ARI" is computed from the IC-SBP attention
masks (its "FG-R ARI" from the decoder's), so this metric is ``fg_ari`` with ``masks:
grouper``: it scores ``latents.masks`` whatever the decoder renders.  Nothing here is
specific to GENESIS-v2: any grouper that provides masks works.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ocf.metrics import FgAri, SegmentationSpec


class AttentionFgAri(FgAri):
    """Foreground ARI of the argmax of ``latents.masks`` (the grouper's masks); the same as
    ``fg_ari`` with ``masks: grouper``."""

    name = "genesis.attention_fg_ari"
    requires = ("latents.masks", "batch.masks")

    class Spec(SegmentationSpec):
        masks: Literal["grouper"] = Field("grouper", description="the masks scored: the grouper's (latents.masks)")
