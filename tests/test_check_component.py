"""The stricter ocf.testing.check_component (issue 20): each check is shown to pass a correct
toy component and to catch a deliberately broken one, with a message naming the problem."""

import pytest
import torch
from torch import nn

from ocf.components import Decoder, Grouper, Objective
from ocf.prob import DiagonalGaussian
from ocf.records import Latents, Rendering, State
from ocf.testing import ConformanceError, check_component, example_state


class GoodGrouper(Grouper):
    """Slots from the mean token; masks and attention over the token grid, a posterior."""

    name = "t.grouper"
    needs = ("features.tokens",)
    provides = ("latents.objects", "latents.posterior", "latents.masks", "latents.attention")
    k, d = 3, 6
    record_d: int | None = 6
    record_k: int | None = 3
    mask_hw: tuple[int, int] | None = None  # None: the data's resolution
    attention_n: int | None = None  # None: the input's token count
    log_std_offset = 0.0
    scale = 1.0  # multiplies the std (0: a zero std)

    def __init__(self, spec, ctx):
        super().__init__(spec, ctx)
        self.proj = nn.Linear(ctx.dim("features.tokens"), self.k * self.d * 2)
        self.hw = ctx.resolution
        if self.record_d is not None:
            ctx.dims["latents.objects"] = self.record_d
        if self.record_k is not None:
            ctx.dims["latents.num_slots"] = self.record_k

    def forward(self, state):
        tokens = state.features.tokens  # [b t n c]
        b, t, n, _ = tokens.shape
        mean, log_std = self.proj(tokens.mean((1, 2))).reshape(b, self.k, 2 * self.d).chunk(2, -1)
        std = (log_std + self.log_std_offset).exp() * self.scale
        h, w = self.mask_hw or self.hw
        logits = torch.einsum("bkd,bk->bk", mean, mean.sum(-1))[:, None, :, None, None]
        masks = logits.expand(b, t, self.k, h, w).softmax(2)
        attn = logits[..., 0].expand(b, t, self.k, self.attention_n or n).softmax(2)
        return Latents(objects=mean, posterior=DiagonalGaussian(mean, std), masks=masks, attention=attn)


def broken(**attrs):
    return type("Broken", (GoodGrouper,), attrs)


def test_a_correct_grouper_passes():
    out = check_component(GoodGrouper)
    assert out.objects.shape == (2, 3, 6) and out.masks.shape == (2, 1, 3, 16, 16)


@pytest.mark.parametrize(
    "attrs, message",
    [
        (
            {"record_d": 16},
            "records ctx.dims['latents.objects'] = 16 but outputs latents.objects [2, 3, 6] (last axis 6)",
        ),
        ({"record_d": None}, "provides latents.objects but records no ctx.dims['latents.objects']"),
        (
            {"record_k": 5},
            "records ctx.dims['latents.num_slots'] = 5 but outputs latents.objects [2, 3, 6] (3 slots)",
        ),
        ({"mask_hw": (8, 8)}, "latents.masks should be [b t k h w] = [2 1 k h w] at 16×16 or 4×4, got [2, 1, 3, 8, 8]"),
        ({"attention_n": 9}, "latents.attention should be [b t k n] = [2 1 k 16], got [2, 1, 3, 9]"),
        ({"scale": 0.0}, "latents.posterior has a std that is not positive (min 0)"),
        ({"log_std_offset": float("inf")}, "produced non-finite values in latents.posterior.std"),
    ],
)
def test_a_broken_grouper_is_caught(attrs, message):
    with pytest.raises(ConformanceError) as exc:
        check_component(broken(**attrs))
    assert str(exc.value).startswith("grouper t.grouper") and message in str(exc.value)


def test_masks_at_the_token_grid_are_accepted():
    out = check_component(broken(mask_hw=(4, 4)))  # the fake tokens lie on a 4×4 grid
    assert out.masks.shape[-2:] == (4, 4)


def test_a_posterior_that_does_not_match_its_latents_is_caught():
    class Mismatch(GoodGrouper):
        def forward(self, state):
            out = super().forward(state)
            out.posterior = DiagonalGaussian(out.objects[:, :2], out.posterior.std[:, :2])
            return out

    with pytest.raises(ConformanceError, match=r"latents.posterior mean \[2, 2, 6\] does not match the latents"):
        check_component(Mismatch)


class GoodDecoder(Decoder):
    """Per-slot colour and mask logits from the slots."""

    name = "t.decoder"
    needs = ("latents.objects",)
    provides = ("rendering.recon", "rendering.rgb", "rendering.mask_logits")
    mask_hw: tuple[int, int] | None = None
    rgb_slots_extra = 0

    def __init__(self, spec, ctx):
        super().__init__(spec, ctx)
        self.out = nn.Linear(ctx.dim("latents.objects"), ctx.channels + 1)
        self.hw, self.t = ctx.resolution, ctx.frames

    def forward(self, state):
        z = self.out(state.latents.objects)  # [b k c+1]
        b, k, _ = z.shape
        h, w = self.mask_hw or self.hw
        rgb = z[:, None, :, :-1, None, None].expand(b, self.t, k, -1, *self.hw)
        logits = z[:, None, :, -1, None, None].expand(b, self.t, k, h, w)
        if self.mask_hw is not None:  # a broken decoder: masks at another size than the rendering
            recon = rgb.mean(2)
            return Rendering(recon=recon, rgb=rgb, mask_logits=logits)
        if self.rgb_slots_extra:
            rgb = torch.cat([rgb, rgb[:, :, :1]], 2)
            return Rendering(recon=rgb.mean(2), rgb=rgb, mask_logits=logits)
        return Rendering.compose(rgb, logits)


def test_a_correct_decoder_passes():
    assert check_component(GoodDecoder).mask_logits.shape == (2, 1, 3, 16, 16)


def test_decoder_masks_at_the_wrong_resolution_are_caught():
    bad = type("BadMasks", (GoodDecoder,), {"mask_hw": (8, 8)})
    with pytest.raises(ConformanceError, match=r"rendering.mask_logits is at resolution \[8, 8\], the rendering at"):
        check_component(bad)


def test_per_slot_colours_that_do_not_line_up_with_the_masks_are_caught():
    bad = type("BadRgb", (GoodDecoder,), {"rgb_slots_extra": 1})
    with pytest.raises(ConformanceError, match=r"rendering.rgb should be \[b t k c h w\] matching mask_logits"):
        check_component(bad)


class MaskEntropy(Objective):
    """Entropy of the grouper's masks."""

    name = "t.mask_entropy"
    needs = ("latents.masks",)

    def forward(self, state):
        m = state.latents.masks.clamp_min(1e-6)
        return {"entropy": -(m * m.log()).sum(2).mean()}


def test_the_fake_input_has_latents_masks_when_they_are_needed():
    terms = check_component(MaskEntropy)
    assert terms["entropy"].item() > 0  # masks over 3 slots: entropy in (0, log 3]
    assert terms["entropy"].item() <= torch.log(torch.tensor(3.0)).item() + 1e-6


def test_reading_an_undeclared_field_is_a_clear_error():
    undeclared = type("Undeclared", (MaskEntropy,), {"needs": ("rendering.recon",)})
    with pytest.raises(ConformanceError) as exc:
        check_component(undeclared)
    text = str(exc.value)
    assert "objective t.mask_entropy read a field missing from its input" in text
    assert "'NoneType' object has no attribute 'masks'" in text and "declare every field it reads in needs" in text


def test_a_need_it_cannot_fake_asks_for_example_state():
    boxes = type("Boxes", (MaskEntropy,), {"needs": ("batch.extras.boxes",)})
    with pytest.raises(ConformanceError) as exc:
        check_component(boxes)
    assert str(exc.value).startswith(
        "objective t.mask_entropy needs batch.extras.boxes, which check_component cannot fake; give the class an "
        "example_state"
    )


def test_an_example_state_that_misses_a_need_is_named():
    def fixture(ctx, batch_size):
        return example_state(("features.tokens",), ctx, batch_size)

    short = type("Short", (MaskEntropy,), {"example_state": staticmethod(fixture)})
    with pytest.raises(ConformanceError, match="its example_state does not supply latents.masks, which it needs"):
        check_component(short)


def test_an_example_state_that_supplies_the_need_passes():
    def fixture(ctx, batch_size):
        state = example_state(("latents.masks",), ctx, batch_size)
        assert isinstance(state, State) and state.latents.masks.shape == (batch_size, 1, 3, 16, 16)
        return state

    ok = type("WithFixture", (MaskEntropy,), {"example_state": staticmethod(fixture)})
    assert set(check_component(ok)) == {"entropy"}
