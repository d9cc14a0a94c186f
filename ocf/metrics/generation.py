"""Metrics of generated scenes: FID and KID (torchmetrics) with a pluggable feature
extractor, and the base class for any metric that scores a model's samples.

The evaluator draws one batch of unconditional samples (seeded by ``eval.seed``) per batch
of real data, so real and generated sets have the same size.  Options come from
``eval.metric_options.<name>`` in the spec.

Feature extractors (``feature:``):

- ``random`` (default, offline): a fixed convolutional network with seeded random weights
  (two stride-2 3×3 convolutions, ReLU, then mean and max pooling → 128 features).
  Random features separate image distributions well enough to rank models against each
  other, but the numbers are comparable only with other numbers from the same extractor
  and seed, never with published FIDs.
- ``torchscript``: any TorchScript file (``weights:``) mapping uint8 images
  ``[n 3 h w]`` to features ``[n f]``; ``call_kwargs`` are passed along.  The standard
  Inception network for FID is such a file (e.g. ``inception-2015-12-05.pt`` with
  ``call_kwargs: {return_features: true}``); ``inception`` is ``torchscript`` with that
  default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from ocf.errors import UserError
from ocf.fields import Repeats, Seed, Size
from ocf.metrics.evaluators import EvalMetric, MetricSpec
from ocf.records import State

__all__ = [
    "RandomFeatures",
    "TorchScriptFeatures",
    "make_extractor",
    "GenerativeMetric",
    "Fid",
    "Kid",
    "GENERATION_METRICS",
]


class RandomFeatures(nn.Module):
    """Seeded random conv features for offline FID/KID (see the module docstring)."""

    def __init__(self, channels: int = 3, width: int = 64, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv1 = nn.Conv2d(channels, width // 2, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(width // 2, width, 3, stride=2, padding=1)
        for conv in (self.conv1, self.conv2):
            fan_in = conv.weight[0].numel()
            conv.weight.data = torch.randn(conv.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5
            conv.bias.data.zero_()
        self.num_features = 2 * width
        self.requires_grad_(False)

    def forward(self, x: Tensor) -> Tensor:
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        h = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)


class TorchScriptFeatures(nn.Module):
    """Features from a TorchScript file called on uint8 images ``[n 3 h w]``."""

    def __init__(self, weights: str, call_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        path = Path(weights)
        if not path.exists():
            raise UserError(f"feature extractor weights {path} not found (give the path of a TorchScript file)")
        try:
            self.net = torch.jit.load(str(path), map_location="cpu").eval()
        except Exception as exc:  # torch raises RuntimeError, ValueError, ... for a file that is not TorchScript
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(". ")[0][:200]
            raise UserError(f"feature extractor weights {path}: not a valid TorchScript file ({detail})") from None
        self.call_kwargs = dict(call_kwargs or {})

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype != torch.uint8:
            x = (x.clamp(0, 1) * 255 + 0.5).to(torch.uint8)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.net(x, **self.call_kwargs).flatten(1).float()


def make_extractor(
    feature: str = "random",
    *,
    weights: str | None = None,
    seed: int = 0,
    call_kwargs: dict | None = None,
    channels: int = 3,
) -> nn.Module:
    """The feature extractor named ``feature`` (random, torchscript or inception)."""
    if feature == "random":
        return RandomFeatures(channels=channels, seed=seed)
    if feature in ("torchscript", "inception"):
        if not weights:
            raise UserError(f"feature extractor {feature!r} needs weights: the path of a TorchScript file")
        if call_kwargs is None:
            call_kwargs = {"return_features": True} if feature == "inception" else {}
        return TorchScriptFeatures(weights, call_kwargs)
    raise UserError(f"unknown feature extractor {feature!r}; choose random, torchscript or inception")


def _images(x: Tensor) -> Tensor:
    """``[b t c h w]`` float in [0, 1] → ``[(b t) c h w]`` uint8."""
    return (x.detach().float().clamp(0, 1).flatten(0, 1) * 255 + 0.5).to(torch.uint8)


class GenerativeMetric(EvalMetric):
    """A metric that also sees the model's unconditional samples: the evaluator calls
    :meth:`update_state` with the real batch's State and :meth:`update_generated` with the
    State of as many generated scenes (``rendering.recon [n t c h w]``)."""

    generative: ClassVar[bool] = True
    requires: ClassVar[tuple[str, ...]] = ()

    def update_generated(self, state: State) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class FeatureSpec(MetricSpec):
    feature: Literal["random", "torchscript", "inception"] = Field(
        "random", description="feature extractor: seeded random convolutions or a TorchScript file"
    )
    weights: str | None = Field(None, description="path of the TorchScript file (torchscript, inception)")
    seed: Seed = Field(0, description="seed of the random extractor's weights")
    call_kwargs: dict[str, Any] | None = Field(None, description="keyword arguments of the TorchScript call")
    channels: Size = Field(3, description="image channels the random extractor reads")


class _FeatureDistance(GenerativeMetric):
    """A distance between the features of real and generated images, computed by a
    torchmetrics metric ``inner`` built by :meth:`_make`."""

    Spec = FeatureSpec

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        o = self.options
        extractor = make_extractor(
            o.feature, weights=o.weights, seed=o.seed, call_kwargs=o.call_kwargs, channels=o.channels
        )
        self.inner = self._make(extractor)

    def _make(self, extractor: nn.Module):  # pragma: no cover - abstract
        raise NotImplementedError

    def update(self, images: Tensor, real: bool) -> None:
        self.inner.update(images, real=real)

    def update_state(self, state: State) -> None:
        self.update(_images(state.batch.frames), real=True)

    def update_generated(self, state: State) -> None:
        self.update(_images(state.rendering.recon), real=False)


class Fid(_FeatureDistance):
    """Fréchet distance between feature statistics of real and generated images
    (torchmetrics FID; random features unless an Inception TorchScript file is given)."""

    name = "fid"

    def _make(self, extractor: nn.Module):
        from torchmetrics.image.fid import FrechetInceptionDistance

        return FrechetInceptionDistance(feature=extractor, normalize=False)

    def compute(self) -> Tensor:
        return self.inner.compute()


class Kid(_FeatureDistance):
    """Kernel (polynomial-MMD) distance between features of real and generated images
    (torchmetrics KID, mean over subsets)."""

    name = "kid"

    class Spec(FeatureSpec):
        subset_size: Size = Field(100, description="images per subset (at most as many as were seen)")
        subsets: Repeats = Field(50, description="number of random subsets averaged")

    def _make(self, extractor: nn.Module):
        from torchmetrics.image.kid import KernelInceptionDistance

        o = self.options
        return KernelInceptionDistance(feature=extractor, subsets=o.subsets, subset_size=o.subset_size, normalize=False)

    def compute(self) -> Tensor:
        inner = self.inner
        n = min(sum(x.shape[0] for x in inner.real_features), sum(x.shape[0] for x in inner.fake_features))
        if n < 2:
            raise UserError("metric kid needs at least 2 real and 2 generated images")
        inner.subset_size = min(self.options.subset_size, n)
        return inner.compute()[0]


GENERATION_METRICS: dict[str, type[GenerativeMetric]] = {cls.name: cls for cls in (Fid, Kid)}
