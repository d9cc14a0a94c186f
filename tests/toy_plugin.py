"""A minimal local plugin used by the core tests (registered per test, never installed)."""

from pydantic import Field
from torch import nn

from ocf.components import ComponentSpec, Decoder, Encoder, Grouper, Objective
from ocf.hookspecs import hookimpl
from ocf.records import Features, Latents, Rendering


class ToyEncoder(Encoder):
    """Flatten pixels into tokens through a linear map."""

    name = "toy.encoder"
    provides = ("features.tokens",)

    class Spec(ComponentSpec):
        width: int = Field(8, ge=1, description="token channels")

    def __init__(self, spec, ctx):
        super().__init__(spec, ctx)
        self.proj = nn.Linear(ctx.channels, spec.width)
        ctx.dims["features.tokens"] = spec.width

    def forward(self, state):
        x = state.batch.frames.flatten(3).transpose(2, 3)  # [b t (h w) c]
        return Features(tokens=self.proj(x), grid=tuple(state.batch.frames.shape[-2:]))


class ToyGrouper(Grouper):
    """Mean-pool tokens into slots."""

    name = "toy.grouper"
    needs = ("features.tokens",)
    provides = ("latents.objects",)

    class Spec(ComponentSpec):
        num_slots: int = Field(2, ge=1, description="slots")

    def __init__(self, spec, ctx):
        super().__init__(spec, ctx)
        d = ctx.dim("features.tokens")
        self.slots = nn.Linear(d, d * spec.num_slots)
        ctx.dims["latents.objects"] = d
        ctx.dims["latents.num_slots"] = spec.num_slots

    def forward(self, state):
        tok = state.features.tokens.mean(2)  # [b t c]
        b, t, c = tok.shape
        return Latents(objects=self.slots(tok).reshape(b, t, self.spec.num_slots, c)[:, 0])


class FrameDecoder(Decoder):
    """A decoder that needs per-frame latents (which the toy grouper lacks)."""

    name = "toy.frame_decoder"
    needs = ("latents.frames",)
    provides = ("rendering.recon",)

    def forward(self, state):  # pragma: no cover - never built in tests
        return Rendering()


class ToyDecoder(Decoder):
    """Broadcast the slot mean to an image."""

    name = "toy.decoder"
    needs = ("latents.objects",)
    provides = ("rendering.recon",)

    def __init__(self, spec, ctx):
        super().__init__(spec, ctx)
        self.out = nn.Linear(ctx.dim("latents.objects"), ctx.channels)
        self.hw = ctx.resolution

    def forward(self, state):
        z = self.out(state.latents.objects.mean(1))  # [b c]
        b, c = z.shape
        recon = z[:, None, :, None, None].expand(b, 1, c, *self.hw)
        return Rendering(recon=recon)


class ToyMSE(Objective):
    """Mean squared error."""

    name = "toy.mse"
    needs = ("rendering.recon",)

    def forward(self, state):
        return {"mse": ((state.rendering.recon - state.target) ** 2).mean()}


@hookimpl
def ocf_register_components(registry):
    registry.register(ToyEncoder, ToyGrouper, ToyDecoder, FrameDecoder, ToyMSE)


def spec_dict(**grouper):
    return {
        "name": "toy",
        "data": {"dataset": "hdf5", "path": "nowhere.h5", "resolution": [8, 8], "channels": 3},
        "model": {
            "encoder": {"type": "toy.encoder"},
            "grouper": {"type": "toy.grouper", **grouper},
            "decoder": {"type": "toy.decoder"},
            "objectives": [{"type": "toy.mse"}],
        },
        "train": {"steps": 2, "batch_size": 2},
    }
