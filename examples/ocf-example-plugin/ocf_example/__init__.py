"""An example third-party ocf plugin.

It adds one Objective, ``example.mask_entropy``: the mean entropy of the mixture masks over
slots at each pixel.  Added to a model's objectives with a small weight it pushes every
pixel towards one slot (crisp masks).
"""

from pydantic import Field

from ocf import Objective, ObjectiveSpec, hookimpl


class MaskEntropy(Objective):
    """Mean per-pixel entropy of the masks over slots (lower: crisper masks)."""

    name = "example.mask_entropy"  # <plugin>.<component>: what a spec's `type:` names
    needs = ("rendering.mask_logits",)

    class Spec(ObjectiveSpec):
        weight: float = Field(0.01, ge=0.0, description="multiplies the entropy term")

    def forward(self, state):
        log_m = state.rendering.mask_logits.log_softmax(dim=2)  # [b t k h w], over k
        entropy = -(log_m.exp() * log_m).sum(dim=2)  # [b t h w]
        return {"mask_entropy": entropy.mean()}


@hookimpl
def ocf_register_components(registry):
    registry.register(MaskEntropy)  # the kind (objective) follows from the base class
