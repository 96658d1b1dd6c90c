"""Input corruptions ("masking") applied to whole batches on the training device.

They corrupt only what the model *sees*; the reconstruction target stays the clean image, so every
reported MSE is measured against the same clean pixels whatever the corruption. That is what makes
runs across a masking sweep, and the PCA baseline, comparable.
"""

from __future__ import annotations

from typing import Annotated

import torch
from annotated_types import Ge, Interval, doc


class Corruption:
    """Maps a clean batch in [0, 1] to the model's input; subclasses define the corruption."""

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class NoCorruption(Corruption):
    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return x


class Binarize(Corruption):
    """Pixels above ``threshold`` become 1, the rest 0."""

    def __init__(self, threshold: Annotated[float, Interval(gt=0, lt=1)] = 0.5) -> None:
        self.threshold = float(threshold)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return (x > self.threshold).to(x.dtype)


class GaussianNoise(Corruption):
    """Adds N(0, std^2) noise per pixel, clamped back to [0, 1]."""

    def __init__(
        self, std: Annotated[float, Ge(0), doc("the noise's standard deviation")] = 0.3
    ) -> None:
        self.std = float(std)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return (x + self.std * noise).clamp_(0.0, 1.0)


class PixelMask(Corruption):
    """Drops each pixel to 0 independently with probability ``p``."""

    def __init__(
        self, p: Annotated[float, Interval(ge=0, lt=1), doc("the share of pixels dropped")] = 0.5
    ) -> None:
        self.p = float(p)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        keep = torch.rand(x.shape, generator=generator, device=x.device) >= self.p
        return x * keep
