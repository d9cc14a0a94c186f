"""The contrastive family as Objective components any encoder or grouper can use: SimCLR's
NT-Xent, MoCo (momentum encoder and a queue of keys), BYOL and SimSiam (predictor,
stop-gradient; BYOL with an EMA target), DINO (EMA teacher, centring and sharpening).

Two views of each sample, without a special case in the core:

- ``views: time`` — frames t and t + ``offset`` of the same clip are the two views.  The
  model's own forward pass has already encoded every frame, so SimCLR and SimSiam need no
  extra pass.
- ``views: augment`` — the objective draws a random augmentation of the clip
  (:func:`ocf_contrastive.nets.augment`) and runs the upstream stages on it: the model's own
  (online) encoder and grouper, or for the momentum methods the objective's EMA copy of them.
  View 1 is the model's forward pass.

What is contrasted (``source``): ``features`` — the encoder's tokens averaged over n,
``[b t c]``; ``objects`` — a DeepSets embedding of the grouper's slots (order-invariant).

Momentum methods (MoCo, BYOL, DINO) own an :class:`~ocf_contrastive.nets.EMACopy` of the
upstream stages they read (found in ``BuildContext.built``, never registered as their own
submodules) and of their own projection head.  The copy is checkpointed with the objective;
its parameters have ``requires_grad = False``.  It is synchronised to the online weights at
the first training step and then moves by ``θ_target ← m θ_target + (1 − m) θ_online`` at
every training forward.  The losses are one-directional (view 1 online, view 2 target);
SimSiam, which needs no second pass, is symmetric.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveFloat
from torch import Tensor, nn

from ocf.components import BuildContext, Objective, ObjectiveSpec
from ocf.fields import Size
from ocf.records import Batch, Features, State
from ocf_common.layers import mlp
from ocf_contrastive.losses import distillation_loss, moco_loss, negative_cosine, nt_xent
from ocf_contrastive.nets import EMACopy, augment
from ocf_setcon.grouper import SetEmbedding


def run_stages(stages: dict[str, nn.Module], batch: Batch) -> State:
    """Run an encoder (and a grouper, if given) on a batch: the second view's pass."""
    state = State(batch)
    state.features = stages["encoder"](state)
    if "grouper" in stages:
        state.latents = stages["grouper"](state)
    return state


class _TinyEncoder(nn.Module):
    """A 1×1 conv encoder for the conformance state of the contrastive objectives."""

    def __init__(self, channels: int, out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, out, 1)

    def forward(self, state: State) -> Features:
        b, t, c, h, w = state.batch.frames.shape
        x = self.conv(state.batch.frames.reshape(b * t, c, h, w))  # [(b t) e h w]
        return Features(tokens=x.flatten(2).transpose(1, 2).reshape(b, t, h * w, -1), grid=(h, w))


class ContrastiveSpec(ObjectiveSpec):
    source: Literal["features", "objects"] = Field(
        "features",
        description="what is contrasted: features = encoder tokens averaged over n; "
        "objects = a DeepSets embedding of the grouper's slots",
    )
    views: Literal["time", "augment"] = Field(
        "time",
        description="time: frames t and t + offset of a clip are the two views; "
        "augment: a random crop/flip/brightness view run through the stages again",
    )
    offset: Size = Field(1, description="frames between the two views (views: time)")
    crop_scale: float = Field(0.6, gt=0, le=1, description="smallest crop area kept (views: augment)")
    flip: bool = Field(True, description="random horizontal flips (views: augment)")
    brightness: float = Field(0.2, ge=0, lt=1, description="brightness factor range ±brightness (views: augment)")
    hidden: Size = Field(
        128, description="hidden width of the projection head (and of the set embedding for source: objects)"
    )
    out_dim: Size = Field(64, description="output size of the projection head")


class ContrastiveObjective(Objective):
    """Base of the contrastive family: projection head, the two views, optional EMA target."""

    name: ClassVar[str] = ""
    needs = ("features.tokens",)
    momentum_target: ClassVar[bool] = False  # MoCo, BYOL, DINO: an EMA copy of the upstream stages and head

    class Spec(ContrastiveSpec):
        pass

    def __init__(self, spec: ContrastiveSpec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)
        label = f"objective {self.name or type(self).__name__}"
        if spec.source == "objects":
            d = ctx.dim("latents.objects", f"{label} (source: objects)")
            self.pool = SetEmbedding(d, spec.hidden, spec.hidden)
            rep = spec.hidden
        else:
            self.pool = None
            rep = ctx.dim("features.tokens", label)
        self.head = mlp([rep, spec.hidden, spec.out_dim])
        built = getattr(ctx, "built", {})
        wanted = ["encoder"] + (["grouper"] if spec.source == "objects" else [])
        needs_stages = self.momentum_target or spec.views == "augment"
        missing = [s for s in wanted if s not in built]
        if needs_stages and missing:
            raise ValueError(
                f"{label} (views: {spec.views}) re-runs the model's {', '.join(wanted)}, "
                f"but no {missing[0]} was built before it"
            )
        self._online = {s: built[s] for s in wanted} if needs_stages else {}  # plain references
        self.target = None
        if self.momentum_target:
            own = {"head": self.head} if self.pool is None else {"head": self.head, "pool": self.pool}
            self.target = EMACopy({**self._online, **own})

    @classmethod
    def example_state(cls, ctx: BuildContext, batch_size: int) -> State:
        """Two-frame clips encoded by a tiny encoder registered in ``ctx.built``."""
        g = torch.Generator().manual_seed(3)
        enc = _TinyEncoder(ctx.channels, 8)
        ctx.dims["features.tokens"], ctx.dims["features.grid"] = 8, ctx.resolution
        if hasattr(ctx, "built"):
            ctx.built["encoder"] = enc
        state = State(Batch(torch.rand(batch_size, 2, ctx.channels, *ctx.resolution, generator=g)))
        state.features = enc(state)
        return state

    # -- representations --------------------------------------------------------------------
    def represent(self, state: State, pool: nn.Module | None = None) -> Tensor:
        """``[b t r]``: mean token per frame, or the set embedding of the frame's slots."""
        if self.spec.source == "features":
            return state.features.tokens.mean(dim=2)  # over n
        objects = state.latents.objects if state.latents is not None else None
        if objects is None:
            raise ValueError(f"objective {self.name}: source objects, but the grouper provides no latents.objects")
        if objects.dim() == 3:
            objects = objects.unsqueeze(1)  # [b 1 k d]
        return (pool or self.pool)(objects)

    def views(self, state: State) -> tuple[Tensor, Tensor]:
        """Online embeddings ``[m e]`` of view 1 and view 2."""
        r1 = self.represent(state)  # [b t r]
        if self.spec.views == "time":
            o = self.spec.offset
            if r1.shape[1] <= o:
                raise ValueError(
                    f"objective {self.name} (views: time, offset {o}) needs clips of more than {o} frames; "
                    f"got {r1.shape[1]} (set data.frames or views: augment)"
                )
            return self.head(r1[:, :-o]).flatten(0, 1), self.head(r1[:, o:]).flatten(0, 1)
        r2 = self.represent(run_stages(self._online, self.second_batch(state)))
        return self.head(r1).flatten(0, 1), self.head(r2).flatten(0, 1)

    def online_view(self, state: State) -> Tensor:
        """The online embedding ``[m e]`` a momentum method compares with its target's view 2."""
        if self.spec.views == "time":
            return self.views(state)[0]
        return self.head(self.represent(state)).flatten(0, 1)

    def second_batch(self, state: State) -> Batch:
        s = self.spec
        return Batch(augment(state.batch.frames, s.crop_scale, s.flip, s.brightness))

    @torch.no_grad()
    def target_view(self, state: State, momentum: float) -> Tensor:
        """The EMA target's embedding of view 2 ``[m e]`` (no gradient)."""
        if self.training:
            self.target.update(momentum)
        stages = {k: self.target[k] for k in self._online}
        pool = self.target["pool"] if self.pool is not None else None
        if self.spec.views == "time":
            r = self.represent(run_stages(stages, state.batch), pool)
            return self.target["head"](r[:, self.spec.offset :]).flatten(0, 1)
        r = self.represent(run_stages(stages, self.second_batch(state)), pool)
        return self.target["head"](r).flatten(0, 1)


# -- the family ------------------------------------------------------------------------------
class NTXent(ContrastiveObjective):
    """SimCLR's NT-Xent: each view's positive is the other view of the same sample, the other 2N − 2 are negatives."""

    name = "contrastive.ntxent"

    class Spec(ContrastiveSpec):
        temperature: PositiveFloat = Field(0.5, description="τ dividing the cosine similarities")

    def forward(self, state: State) -> dict[str, Tensor]:
        z1, z2 = self.views(state)
        return {"nt_xent": nt_xent(z1, z2, self.spec.temperature)}


class MoCo(ContrastiveObjective):
    """MoCo: queries from the online stages, keys from their momentum (EMA) copy, a queue of past keys as negatives."""

    name = "contrastive.moco"
    momentum_target = True

    class Spec(ContrastiveSpec):
        temperature: PositiveFloat = Field(0.07, description="τ of the InfoNCE over [positive key, queue]")
        momentum: float = Field(0.99, ge=0, lt=1, description="EMA momentum m of the key encoder")
        queue_size: Size = Field(1024, description="number of past keys kept as negatives")

    def __init__(self, spec: Spec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)
        self.register_buffer("queue", F.normalize(torch.randn(spec.queue_size, spec.out_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, keys: Tensor) -> None:
        """FIFO: the newest keys overwrite the oldest, from ``queue_ptr`` on (wrapping)."""
        n, size = keys.shape[0], self.queue.shape[0]
        keys = keys[-size:]
        idx = (int(self.queue_ptr) + torch.arange(len(keys), device=keys.device)) % size
        self.queue[idx] = F.normalize(keys, dim=1)
        self.queue_ptr.fill_((int(self.queue_ptr) + n) % size)

    def forward(self, state: State) -> dict[str, Tensor]:
        q = self.online_view(state)
        k = self.target_view(state, self.spec.momentum)  # [m e]
        loss = moco_loss(q, k, self.queue, self.spec.temperature)
        if self.training:
            self.enqueue(k)
        return {"moco": loss}


class _Predictor(ContrastiveObjective):
    """BYOL / SimSiam: an online predictor on top of the projection head."""

    class Spec(ContrastiveSpec):
        predictor_hidden: Size = Field(64, description="hidden width of the predictor MLP")

    def __init__(self, spec: Spec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)
        self.predictor = mlp([spec.out_dim, spec.predictor_hidden, spec.out_dim])


class SimSiam(_Predictor):
    """SimSiam: a predictor on one view regresses the other view's projection (stop-gradient); no negatives, no EMA."""

    name = "contrastive.simsiam"

    def forward(self, state: State) -> dict[str, Tensor]:
        z1, z2 = self.views(state)
        p1, p2 = self.predictor(z1), self.predictor(z2)
        return {"simsiam": 0.5 * (negative_cosine(p1, z2) + negative_cosine(p2, z1))}


class BYOL(_Predictor):
    """BYOL: the online predictor regresses an EMA target network's projection of the other view (2 − 2·cos)."""

    name = "contrastive.byol"
    momentum_target = True

    class Spec(_Predictor.Spec):
        momentum: float = Field(0.99, ge=0, lt=1, description="EMA momentum of the target network")

    def forward(self, state: State) -> dict[str, Tensor]:
        z1 = self.online_view(state)
        target = self.target_view(state, self.spec.momentum)
        return {"byol": 2 + 2 * negative_cosine(self.predictor(z1), target)}


class DINO(ContrastiveObjective):
    """DINO: the student matches an EMA teacher's centred, sharpened distribution over out_dim prototypes."""

    name = "contrastive.dino"
    momentum_target = True

    class Spec(ContrastiveSpec):
        out_dim: Size = Field(128, description="number of output dimensions (prototypes) of the head")
        student_temperature: PositiveFloat = Field(0.1, description="τ_s of the student softmax")
        teacher_temperature: PositiveFloat = Field(0.04, description="τ_t < τ_s: sharpening of the teacher")
        center_momentum: float = Field(0.9, ge=0, lt=1, description="EMA momentum of the centre of teacher outputs")
        momentum: float = Field(0.99, ge=0, lt=1, description="EMA momentum of the teacher")

    def __init__(self, spec: Spec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)
        self.register_buffer("center", torch.zeros(spec.out_dim))

    def teacher_probs(self, logits: Tensor) -> Tensor:
        """Centred and sharpened teacher distribution ``softmax((t − c) / τ_t)``."""
        return ((logits - self.center) / self.spec.teacher_temperature).softmax(dim=1)

    @torch.no_grad()
    def update_center(self, teacher_logits: Tensor) -> None:
        """``c ← m c + (1 − m) · mean over the batch of the teacher outputs``."""
        m = self.spec.center_momentum
        self.center.mul_(m).add_(teacher_logits.mean(dim=0), alpha=1 - m)

    def forward(self, state: State) -> dict[str, Tensor]:
        s = self.online_view(state)
        t = self.target_view(state, self.spec.momentum)
        loss = distillation_loss(s, self.teacher_probs(t), self.spec.student_temperature)
        if self.training:
            self.update_center(t)
        return {"dino": loss}
