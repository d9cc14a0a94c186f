"""FG-ARI of the grouper's own masks (``latents.masks``).

The core ``fg_ari`` scores :meth:`State.segmentation`, which prefers the decoder's masks.
GENESIS-v2's published "FG-ARI" is computed from the IC-SBP attention masks (its
"FG-R ARI" from the decoder's), so this metric scores ``latents.masks`` whatever the decoder
renders.  Nothing here is specific to GENESIS-v2: any grouper that provides masks works.
"""

from __future__ import annotations

from torch import Tensor

from ocf.metrics import ItemMean, MetricUnavailable, fg_ari, segmentation_labels
from ocf.records import State


class AttentionFgAri(ItemMean):
    """Foreground ARI of the argmax of ``latents.masks`` (the grouper's masks) over the whole clip."""

    name = "genesis.attention_fg_ari"
    requires = ("latents.masks", "batch.masks")

    def score(self, state: State) -> Tensor:
        type(self).check(state)
        masks, true = state.latents.masks, state.batch.masks
        b, t, h, w = true.shape
        if masks.shape[:2] != (b, t):
            raise MetricUnavailable(
                f"metric {self.name}: grouper masks {tuple(masks.shape)} do not cover the ground truth "
                f"{tuple(true.shape)}"
            )
        labels = segmentation_labels(masks.detach(), (h, w))
        return fg_ari(labels.reshape(b, -1), true.reshape(b, -1))
