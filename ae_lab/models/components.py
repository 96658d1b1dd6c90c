"""Encoder and decoder networks the model variants are assembled from.

Decoders return logits; the autoencoder applies the sigmoid, so a Bernoulli loss can use the
numerically stable ``binary_cross_entropy_with_logits`` on the same network.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ae_lab.data.sizes import IMAGE_SHAPE, N_PIXELS


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


def dense_encoder(hidden: Sequence[int], out_dim: int, he_init: bool = False) -> nn.Sequential:
    """784 -> hidden... -> out_dim."""
    return nn.Sequential(nn.Flatten(), mlp([N_PIXELS, *hidden, out_dim], he_init=he_init))


def dense_decoder(hidden: Sequence[int], latent_dim: int, he_init: bool = False) -> nn.Sequential:
    """latent -> reversed hidden... -> 784 logits, shaped as an image."""
    return nn.Sequential(
        mlp([latent_dim, *reversed(hidden), N_PIXELS], he_init=he_init),
        nn.Unflatten(1, IMAGE_SHAPE),
    )


def conv_encoder(out_dim: int, channels: Sequence[int] = (32, 64)) -> nn.Sequential:
    """Conv + BatchNorm + ReLU + 2x2 average pooling per stage (28 -> 14 -> 7), then linear."""
    layers: list[nn.Module] = []
    n_in = IMAGE_SHAPE[0]
    for n_out in channels:
        layers += [
            nn.Conv2d(n_in, n_out, 3, padding=1),
            nn.BatchNorm2d(n_out),
            nn.ReLU(),
            nn.AvgPool2d(2),
        ]
        n_in = n_out
    side = IMAGE_SHAPE[1] // 2 ** len(channels)
    layers += [nn.Flatten(), nn.Linear(n_in * side * side, out_dim)]
    return nn.Sequential(*layers)


def conv_decoder(latent_dim: int, channels: Sequence[int] = (32, 64)) -> nn.Sequential:
    """Linear -> unflatten -> transposed convs doubling the side (7 -> 14 -> 28) -> logits."""
    chans = list(reversed(channels))
    side = IMAGE_SHAPE[1] // 2 ** len(chans)
    layers: list[nn.Module] = [
        nn.Linear(latent_dim, chans[0] * side * side),
        nn.ReLU(),
        nn.Unflatten(1, (chans[0], side, side)),
    ]
    for n_in, n_out in zip(chans, chans[1:], strict=False):
        layers += [nn.ConvTranspose2d(n_in, n_out, 4, 2, 1), nn.BatchNorm2d(n_out), nn.ReLU()]
    layers.append(nn.ConvTranspose2d(chans[-1], IMAGE_SHAPE[0], 4, 2, 1))
    return nn.Sequential(*layers)
