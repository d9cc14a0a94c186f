"""The contrastive family as Objective components any encoder or grouper can use: SimCLR's
NT-Xent, MoCo (momentum encoder and a queue of keys), BYOL and SimSiam (predictor,
stop-gradient; BYOL with an EMA target), DINO (EMA teacher, centring and sharpening).

Two views of each sample, without a special case in the core:

- ``views: time`` — frames t and t + ``offset`` of the same clip are the two views (as in
  SetCon's public code and time-contrastive learning).  The model's own forward pass has
  already encoded every frame, so SimCLR and SimSiam need no extra pass.
- ``views: augment`` — the objective draws a random augmentation of the clip (crop and
  resize, horizontal flip, brightness; one draw per clip, from torch's RNG) and runs the
  upstream stages on it: the model's own (online) encoder and grouper, or for the momentum
  methods the objective's EMA copy of them.  View 1 is the model's forward pass.

What is contrasted (``source``): ``features`` — the encoder's tokens averaged over n,
``[b t c]``; ``objects`` — a DeepSets embedding of the grouper's slots (order-invariant).

Momentum methods (MoCo, BYOL, DINO) own an :class:`EMACopy` of the upstream stages they read
(found in ``BuildContext.built``, never registered as their own submodules) and of their own
projection head.  The copy is registered with the objective, so it is checkpointed and
resumed; its parameters have ``requires_grad = False`` so no optimizer touches them.  It is
synchronised to the online weights at the first training step (so ``train.init_from`` and
freshly built models both start from target = online) and then moves by
``θ_target ← m θ_target + (1 − m) θ_online`` at every training forward.  The losses are the
one-directional forms (view 1 online, view 2 target); the papers symmetrise by swapping the
views, which doubles the cost (SimSiam, which needs no second pass, is symmetric).
"""

from __future__ import annotations

import copy
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveFloat, PositiveInt
from torch import Tensor, nn

from ocf.components import BuildContext, Objective, ObjectiveSpec
from ocf.records import Batch, Features, State
from ocf_setcon.grouper import SetEmbedding
from ocf_setcon.losses import info_nce, nt_xent


# -- building blocks -------------------------------------------------------------------------
def augment(frames: Tensor, crop_scale: float = 0.6, flip: bool = True, brightness: float = 0.2,
            generator: torch.Generator | None = None) -> Tensor:
    """A random view of each clip ``[b t c h w]`` (one draw per clip, every frame alike):
    a crop covering ``crop_scale``–1 of the area resized back, a horizontal flip with
    probability ½, brightness × U(1 − brightness, 1 + brightness); values stay in [0, 1]."""
    b, t, c, h, w = frames.shape
    dev, dt = frames.device, frames.dtype

    def u(lo: float, hi: float, *shape: int) -> Tensor:
        return lo + (hi - lo) * torch.rand(*shape, generator=generator, device=dev, dtype=dt)

    side = u(crop_scale, 1.0, b).sqrt()  # fraction of each side kept
    tx, ty = u(-1, 1, b) * (1 - side), u(-1, 1, b) * (1 - side)
    sign = torch.where(u(0, 1, b) < 0.5, -1.0, 1.0).to(dt) if flip else torch.ones(b, device=dev, dtype=dt)
    theta = torch.zeros(b, 2, 3, device=dev, dtype=dt)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = side * sign, tx, side, ty
    theta = theta.repeat_interleave(t, 0)  # [(b t) 2 3]
    flat = frames.reshape(b * t, c, h, w)
    grid = F.affine_grid(theta, list(flat.shape), align_corners=False)
    out = F.grid_sample(flat, grid, mode="bilinear", padding_mode="border", align_corners=False)
    gain = u(1 - brightness, 1 + brightness, b).repeat_interleave(t).view(-1, 1, 1, 1)
    return (out * gain).clamp(0, 1).reshape(b, t, c, h, w)


def run_stages(stages: dict[str, nn.Module], batch: Batch) -> State:
    """Run an encoder (and a grouper, if given) on a batch: the second view's pass."""
    state = State(batch)
    state.features = stages["encoder"](state)
    if "grouper" in stages:
        state.latents = stages["grouper"](state)
    return state


class EMACopy(nn.Module):
    """An exponential-moving-average copy of named modules (a momentum encoder / target
    network).  ``sources`` are the online modules, held as plain references; the copies are
    registered here with ``requires_grad = False``."""

    def __init__(self, sources: dict[str, nn.Module]) -> None:
        super().__init__()
        self.sources = dict(sources)  # a plain dict: not registered, they belong to the model
        self.copies = nn.ModuleDict({k: copy.deepcopy(m) for k, m in sources.items()})
        for p in self.copies.parameters():
            p.requires_grad_(False)
        self.register_buffer("synced", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def update(self, momentum: float) -> None:
        """``θ_copy ← m θ_copy + (1 − m) θ_source`` (a plain copy the first time)."""
        m = momentum if bool(self.synced) else 0.0
        for name, src in self.sources.items():
            for p_copy, p_src in zip(self.copies[name].parameters(), src.parameters()):
                p_copy.mul_(m).add_(p_src.detach(), alpha=1 - m)
            for b_copy, b_src in zip(self.copies[name].buffers(), src.buffers()):
                b_copy.copy_(b_src)
        self.synced.fill_(True)

    def __getitem__(self, name: str) -> nn.Module:
        return self.copies[name]


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
        "features", description="what is contrasted: features = encoder tokens averaged over n; objects = a DeepSets embedding of the grouper's slots"
    )
    views: Literal["time", "augment"] = Field(
        "time", description="time: frames t and t + offset of a clip are the two views; augment: a random crop/flip/brightness view run through the stages again"
    )
    offset: PositiveInt = Field(1, description="frames between the two views (views: time)")
    crop_scale: float = Field(0.6, gt=0, le=1, description="smallest crop area kept (views: augment)")
    flip: bool = Field(True, description="random horizontal flips (views: augment)")
    brightness: float = Field(0.2, ge=0, lt=1, description="brightness factor range ±brightness (views: augment)")
    hidden: PositiveInt = Field(128, description="hidden width of the projection head (and of the set embedding for source: objects)")
    out_dim: PositiveInt = Field(64, description="output size of the projection head")


class ContrastiveObjective(Objective):
    """Base of the contrastive family: projection head, the two views, optional EMA target."""

    needs = ("features.tokens",)
    momentum_target = False  # MoCo, BYOL, DINO: an EMA copy of the upstream stages and head

    class Spec(ContrastiveSpec):
        pass

    def __init__(self, spec: ContrastiveSpec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)
        name = self.registered_name or type(self).__name__
        if spec.source == "objects":
            d = ctx.dim("latents.objects", f"objective {name} (source: objects)")
            self.pool = SetEmbedding(d, spec.hidden, spec.hidden)
            rep = spec.hidden
        else:
            self.pool = None
            rep = ctx.dim("features.tokens", f"objective {name}")
        self.head = self.make_head(rep, spec)
        built = getattr(ctx, "built", {})
        wanted = ["encoder"] + (["grouper"] if spec.source == "objects" else [])
        needs_stages = self.momentum_target or spec.views == "augment"
        missing = [s for s in wanted if s not in built]
        if needs_stages and missing:
            raise ValueError(f"objective {name} (views: {spec.views}) re-runs the model's {', '.join(wanted)}, but no {missing[0]} was built before it")
        self._online = {s: built[s] for s in wanted} if needs_stages else {}  # plain references
        self.target = None
        if self.momentum_target:
            own = {"head": self.head} if self.pool is None else {"head": self.head, "pool": self.pool}
            self.target = EMACopy({**self._online, **own})

    def make_head(self, rep: int, spec: ContrastiveSpec) -> nn.Module:
        return nn.Sequential(nn.Linear(rep, spec.hidden), nn.ReLU(), nn.Linear(spec.hidden, spec.out_dim))

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
            raise ValueError(f"objective {self.registered_name}: source objects, but the grouper provides no latents.objects")
        if objects.dim() == 3:
            objects = objects.unsqueeze(1)  # [b 1 k d]
        return (pool or self.pool)(objects)

    def views(self, state: State) -> tuple[Tensor, Tensor]:
        """Online embeddings of view 1 ``[m e]`` and, for non-momentum methods, of view 2."""
        r1 = self.represent(state)  # [b t r]
        if self.spec.views == "time":
            o = self.spec.offset
            if r1.shape[1] <= o:
                raise ValueError(f"objective {self.registered_name} (views: time, offset {o}) needs clips of more than {o} frames; got {r1.shape[1]} (set data.frames or views: augment)")
            return self.head(r1[:, :-o]).flatten(0, 1), self.head(r1[:, o:]).flatten(0, 1)
        r2 = self.represent(run_stages(self._online, self.second_batch(state)))
        return self.head(r1).flatten(0, 1), self.head(r2).flatten(0, 1)

    def second_batch(self, state: State) -> Batch:
        s = self.spec
        return Batch(augment(state.batch.frames, s.crop_scale, s.flip, s.brightness))

    @torch.no_grad()
    def target_view(self, state: State, momentum: float) -> Tensor:
        """The EMA target's embedding of view 2 ``[m e]`` (no gradient)."""
        if self.training:
            self.target.update(momentum)
        stages = {k: self.target[k] for k in self._online}
        if self.spec.views == "time":
            r = self.represent(run_stages(stages, state.batch), self.target["pool"] if self.pool is not None else None)
            return self.target["head"](r[:, self.spec.offset :]).flatten(0, 1)
        batch = self.second_batch(state)
        r = self.represent(run_stages(stages, batch), self.target["pool"] if self.pool is not None else None)
        return self.target["head"](r).flatten(0, 1)


# -- the family ------------------------------------------------------------------------------
class NTXent(ContrastiveObjective):
    """SimCLR's NT-Xent: each view's positive is the other view of the same sample, the other 2N − 2 embeddings are negatives."""

    class Spec(ContrastiveSpec):
        temperature: PositiveFloat = Field(0.5, description="τ dividing the cosine similarities (SimCLR: 0.5 at batch 256-512; 0.1 at large batch)")

    def forward(self, state: State) -> dict[str, Tensor]:
        z1, z2 = self.views(state)
        return {"nt_xent": nt_xent(z1, z2, self.spec.temperature)}


class MoCo(ContrastiveObjective):
    """MoCo: queries from the online stages, keys from their momentum (EMA) copy; negatives are a FIFO queue of past keys."""

    momentum_target = True

    class Spec(ContrastiveSpec):
        temperature: PositiveFloat = Field(0.07, description="τ of the InfoNCE over [positive key, queue]")
        momentum: float = Field(0.99, ge=0, lt=1, description="EMA momentum m of the key encoder (MoCo: 0.999 over long runs)")
        queue_size: PositiveInt = Field(1024, description="number of past keys kept as negatives (MoCo: 65536)")

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
        q, _ = self.views(state) if self.spec.views == "time" else (self.head(self.represent(state)).flatten(0, 1), None)
        k = self.target_view(state, self.spec.momentum)  # [m e]
        qn, kn = F.normalize(q, dim=1), F.normalize(k, dim=1)
        candidates = torch.cat([kn, self.queue.clone().detach()])  # positives: the m keys, then the queue
        loss, _ = info_nce(qn, candidates, torch.arange(len(qn), device=q.device), self.spec.temperature)
        if self.training:
            self.enqueue(k)
        return {"moco": loss}


class _Predictor(ContrastiveObjective):
    """BYOL / SimSiam: an online predictor on top of the projection head."""

    class Spec(ContrastiveSpec):
        predictor_hidden: PositiveInt = Field(64, description="hidden width of the predictor MLP")

    def __init__(self, spec, ctx: BuildContext) -> None:
        super().__init__(spec, ctx)
        e = spec.out_dim
        self.predictor = nn.Sequential(nn.Linear(e, spec.predictor_hidden), nn.ReLU(), nn.Linear(spec.predictor_hidden, e))


def negative_cosine(p: Tensor, z: Tensor) -> Tensor:
    """``−cos(p, stopgrad(z))`` averaged over rows: the target ``z`` gets no gradient."""
    return -(F.normalize(p, dim=1) * F.normalize(z.detach(), dim=1)).sum(dim=1).mean()


class SimSiam(_Predictor):
    """SimSiam: predictor on one view regresses the other view's projection under a stop-gradient; no negatives, no momentum."""

    def forward(self, state: State) -> dict[str, Tensor]:
        z1, z2 = self.views(state)
        p1, p2 = self.predictor(z1), self.predictor(z2)
        return {"simsiam": 0.5 * (negative_cosine(p1, z2) + negative_cosine(p2, z1))}


class BYOL(_Predictor):
    """BYOL: the online predictor regresses an EMA target network's projection of the other view (2 − 2·cos)."""

    momentum_target = True

    class Spec(_Predictor.Spec):
        momentum: float = Field(0.99, ge=0, lt=1, description="EMA momentum of the target network (BYOL: 0.996 → 1)")

    def forward(self, state: State) -> dict[str, Tensor]:
        z1 = self.views(state)[0] if self.spec.views == "time" else self.head(self.represent(state)).flatten(0, 1)
        target = self.target_view(state, self.spec.momentum)
        return {"byol": 2 + 2 * negative_cosine(self.predictor(z1), target)}


class DINO(ContrastiveObjective):
    """DINO: the student matches an EMA teacher's centred, sharpened distribution over out_dim prototypes (cross-entropy)."""

    momentum_target = True

    class Spec(ContrastiveSpec):
        out_dim: PositiveInt = Field(128, description="number of output dimensions (prototypes) of the head")
        student_temperature: PositiveFloat = Field(0.1, description="τ_s of the student softmax")
        teacher_temperature: PositiveFloat = Field(0.04, description="τ_t < τ_s: sharpening of the teacher")
        center_momentum: float = Field(0.9, ge=0, lt=1, description="EMA momentum of the centre of teacher outputs")
        momentum: float = Field(0.99, ge=0, lt=1, description="EMA momentum of the teacher (DINO: 0.996 → 1)")

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
        s = self.views(state)[0] if self.spec.views == "time" else self.head(self.represent(state)).flatten(0, 1)
        t = self.target_view(state, self.spec.momentum)
        p_t = self.teacher_probs(t)
        loss = -(p_t * F.log_softmax(s / self.spec.student_temperature, dim=1)).sum(dim=1).mean()
        if self.training:
            self.update_center(t)
        return {"dino": loss}


def entropy(p: Tensor) -> Tensor:
    """Mean entropy (nats) of rows of probabilities ``[m e]``."""
    return -(p * p.clamp_min(1e-12).log()).sum(dim=1).mean()


FAMILY = {"nt_xent": NTXent, "moco": MoCo, "byol": BYOL, "simsiam": SimSiam, "dino": DINO}
__all__ = ["augment", "run_stages", "EMACopy", "negative_cosine", "entropy", "FAMILY", *[c.__name__ for c in FAMILY.values()]]
