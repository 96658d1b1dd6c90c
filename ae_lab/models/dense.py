"""Dense autoencoders: the classic 784 -> 128 -> latent baseline and deeper stacks."""

from __future__ import annotations

from ae_lab.models.base import AutoencoderModule, OptimizerFactory
from ae_lab.models.components import dense_decoder, dense_encoder


class DenseAE(AutoencoderModule):
    """784 -> hidden... -> latent -> reversed hidden... -> 784, ReLU between, sigmoid output.

    The code itself is linear, so with no hidden layers this is the linear autoencoder whose
    optimum spans the same subspace as PCA: the cleanest comparison with the baseline.
    """

    def __init__(
        self,
        latent_dim: int,
        hidden: list[int] = (128,),  # type: ignore[assignment]
        he_init: bool = False,
        optimizer: OptimizerFactory | None = None,
    ) -> None:
        super().__init__(latent_dim, optimizer)
        self.encoder = dense_encoder(list(hidden), latent_dim, he_init)
        self.decoder = dense_decoder(list(hidden), latent_dim, he_init)
