"""Convolutional autoencoder: the conv VAE's networks with a deterministic code."""

from __future__ import annotations

from ae_lab.models.base import AutoencoderModule, OptimizerFactory
from ae_lab.models.components import conv_decoder, conv_encoder


class ConvAE(AutoencoderModule):
    """Conv + BatchNorm + pooling (28 -> 14 -> 7) to a linear code; transposed convs back.

    Same networks as ``ConvVAE``, so the pair isolates what the variational part costs or buys
    at a given bottleneck; against ``DenseAE`` it isolates what convolutions buy.
    """

    def __init__(
        self,
        latent_dim: int,
        channels: list[int] = (32, 64),  # type: ignore[assignment]
        optimizer: OptimizerFactory | None = None,
    ) -> None:
        super().__init__(latent_dim, optimizer)
        self.encoder = conv_encoder(latent_dim, list(channels))
        self.decoder = conv_decoder(latent_dim, list(channels))
