"""The encoders and decoders an autoencoder is composed of (``Autoencoder(encoder, decoder,
objective)``), for images of any (C, H, W).

Each is chosen in the model's config by ``_target_``. An encoder maps images to
``latent_dim * per_unit`` values (``per_unit=2`` for a variational objective: a mean and a
log-variance per code unit); a decoder maps codes of ``latent_dim`` to logits shaped as the
images. The autoencoder applies the sigmoid, so a Bernoulli loss can use the numerically stable
``binary_cross_entropy_with_logits`` on the same network.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated

import torch
from annotated_types import Ge
from torch import nn

from ae_lab.models.types import MNIST_SHAPE, ImageShape, LatentDim, Widths, shape_of

PerUnit = Annotated[int, Ge(1)]


def mlp(sizes: Sequence[int], activate_last: bool = False, he_init: bool = False) -> nn.Sequential:
    """Linear layers with ReLU between them (and after the last one if ``activate_last``).

    ``he_init`` draws every weight that feeds a ReLU from He et al.'s normal, which keeps the
    signal's variance through a deep stack; torch's default shrinks it about sixfold a layer, so a
    deep autoencoder's code and output start out almost constant and take epochs to recover."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2 or activate_last:
            if he_init:
                nn.init.kaiming_normal_(layers[-1].weight, nonlinearity="relu")
                nn.init.zeros_(layers[-1].bias)
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class DenseEncoder(nn.Sequential):
    """pixels -> hidden... -> latent_dim * per_unit, ReLU between, the last layer linear."""

    def __init__(
        self,
        latent_dim: LatentDim,
        image_shape: ImageShape = MNIST_SHAPE,
        hidden: Widths = (128,),
        he_init: bool = False,
        per_unit: PerUnit = 1,
    ) -> None:
        pixels = math.prod(shape_of(image_shape))
        self.out_dim = latent_dim * per_unit
        super().__init__(nn.Flatten(), mlp([pixels, *hidden, self.out_dim], he_init=he_init))

    def single_linear(self) -> nn.Linear | None:
        """The one layer when there are no hidden ones (a contractive penalty's closed form)."""
        layers = self[1]
        return layers[0] if len(layers) == 1 else None


class DenseDecoder(nn.Sequential):
    """latent_dim -> reversed hidden... -> pixel logits, shaped as an image."""

    def __init__(
        self,
        latent_dim: LatentDim,
        image_shape: ImageShape = MNIST_SHAPE,
        hidden: Widths = (128,),
        he_init: bool = False,
    ) -> None:
        shape = shape_of(image_shape)
        super().__init__(
            mlp([latent_dim, *reversed(list(hidden)), math.prod(shape)], he_init=he_init),
            nn.Unflatten(1, shape),
        )


def padded(side: int, stages: int) -> int:
    """``side`` rounded up to a multiple of 2**stages, which ``stages`` halvings divide evenly."""
    step = 2**stages
    return -(-side // step) * step


class Crop(nn.Module):
    """Keeps the top-left (height, width) of a batch of images: the decoder's output cut back to
    the image where the encoder padded it."""

    def __init__(self, height: int, width: int) -> None:
        super().__init__()
        self.height, self.width = height, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., : self.height, : self.width]


class ConvEncoder(nn.Sequential):
    """Conv + BatchNorm + ReLU + 2x2 average pooling per stage (28 -> 14 -> 7), then linear.

    An image whose sides the stages do not halve evenly is zero-padded at the bottom and right to
    the next multiple of 2**stages (the decoder crops its output back)."""

    def __init__(
        self,
        latent_dim: LatentDim,
        image_shape: ImageShape = MNIST_SHAPE,
        channels: Widths = (32, 64),
        per_unit: PerUnit = 1,
    ) -> None:
        c, h, w = shape_of(image_shape)
        stages = len(channels)
        ph, pw = padded(h, stages), padded(w, stages)
        layers: list[nn.Module] = (
            [nn.ZeroPad2d((0, pw - w, 0, ph - h))] if (ph, pw) != (h, w) else []
        )
        n_in = c
        for n_out in channels:
            layers += [nn.Conv2d(n_in, n_out, 3, padding=1), nn.BatchNorm2d(n_out), nn.ReLU()]
            layers.append(nn.AvgPool2d(2))
            n_in = n_out
        self.out_dim = latent_dim * per_unit
        side = n_in * (ph >> stages) * (pw >> stages)
        layers += [nn.Flatten(), nn.Linear(side, self.out_dim)]
        super().__init__(*layers)


class ConvDecoder(nn.Sequential):
    """Linear -> unflatten -> transposed convs doubling the sides (7 -> 14 -> 28) -> logits,
    cropped to the image where the encoder padded it."""

    def __init__(
        self,
        latent_dim: LatentDim,
        image_shape: ImageShape = MNIST_SHAPE,
        channels: Widths = (32, 64),
    ) -> None:
        c, h, w = shape_of(image_shape)
        chans = list(reversed(list(channels)))
        stages = len(chans)
        ph, pw = padded(h, stages), padded(w, stages)
        small = (chans[0], ph >> stages, pw >> stages)
        layers: list[nn.Module] = [
            nn.Linear(latent_dim, math.prod(small)),
            nn.ReLU(),
            nn.Unflatten(1, small),
        ]
        for n_in, n_out in zip(chans, chans[1:], strict=False):
            layers += [nn.ConvTranspose2d(n_in, n_out, 4, 2, 1), nn.BatchNorm2d(n_out), nn.ReLU()]
        layers.append(nn.ConvTranspose2d(chans[-1], c, 4, 2, 1))
        if (ph, pw) != (h, w):
            layers.append(Crop(h, w))
        super().__init__(*layers)
