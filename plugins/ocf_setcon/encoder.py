"""SetCon's encoder: Slot Attention's CNN encoder (:class:`ocf_common.encoders.CNNEncoder`: convs with
ReLU, soft position embedding, LayerNorm and MLP on the tokens) with a BatchNorm after the
first conv, as every CNN of the unofficial SetCon code has."""

from __future__ import annotations

from pydantic import Field
from torch import nn

from ocf.components import BuildContext
from ocf_common.encoders import CNNEncoder


class SetConEncoder(CNNEncoder):
    """Per-frame CNN with BatchNorm after the first conv, soft position embedding, LayerNorm and MLP on the tokens."""

    name = "setcon.encoder"

    class Spec(CNNEncoder.Spec):
        batch_norm: bool = Field(
            True,
            description="BatchNorm2d between the first conv and its ReLU (the unofficial SetCon code); false: the "
            "plain cnn encoder",
        )

    def __init__(self, spec: Spec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)
        if spec.batch_norm:
            first, *rest = self.convs
            self.convs = nn.Sequential(first, nn.BatchNorm2d(spec.channels[0]), *rest)
