"""The autoencoders by their earlier names (``DenseAE(latent_dim=8)``), for code that builds them
in Python: each is the one ``Autoencoder`` with its networks and objective filled in, as its
``conf/model/*.yaml`` composes it. The configs build ``Autoencoder`` itself."""

from __future__ import annotations

from typing import Annotated, Literal

from annotated_types import Ge, Gt, Lt

from ae_lab.models.autoencoder import Autoencoder
from ae_lab.models.module import OptimizerFactory
from ae_lab.models.networks import ConvDecoder, ConvEncoder, DenseDecoder, DenseEncoder
from ae_lab.models.objectives import Contractive, Reconstruction, Sparse, Variational
from ae_lab.models.types import MNIST_SHAPE, ImageShape, LatentDim, Widths


class DenseAE(Autoencoder):
    """pixels -> hidden... -> latent -> reversed hidden... -> pixels, MSE (``model=ae``)."""

    def __init__(
        self,
        latent_dim: LatentDim,
        hidden: Widths = (128,),
        he_init: bool = False,
        optimizer: OptimizerFactory | None = None,
        image_shape: ImageShape = MNIST_SHAPE,
    ) -> None:
        encoder = DenseEncoder(latent_dim, image_shape, hidden, he_init)
        decoder = DenseDecoder(latent_dim, image_shape, hidden, he_init)
        super().__init__(
            encoder, decoder, Reconstruction(), latent_dim, image_shape, optimizer,
            hidden=list(hidden), he_init=he_init,
        )  # fmt: skip


class ConvAE(Autoencoder):
    """Conv encoder to a linear code, transposed-conv decoder, MSE (``model=conv_ae``)."""

    def __init__(
        self,
        latent_dim: LatentDim,
        channels: Widths = (32, 64),
        optimizer: OptimizerFactory | None = None,
        image_shape: ImageShape = MNIST_SHAPE,
    ) -> None:
        encoder = ConvEncoder(latent_dim, image_shape, channels)
        decoder = ConvDecoder(latent_dim, image_shape, channels)
        super().__init__(
            encoder, decoder, Reconstruction(), latent_dim, image_shape, optimizer,
            channels=list(channels),
        )  # fmt: skip


class SparseAE(Autoencoder):
    """Dense networks with the sparse objective (``model=sparse_ae``)."""

    def __init__(
        self,
        latent_dim: LatentDim,
        hidden: Widths = (),
        sparsity: Literal["kl", "l1"] = "kl",
        rho: Annotated[float, Gt(0), Lt(1)] = 0.05,
        weight: Annotated[float, Ge(0)] = 0.01,
        optimizer: OptimizerFactory | None = None,
        image_shape: ImageShape = MNIST_SHAPE,
    ) -> None:
        encoder = DenseEncoder(latent_dim, image_shape, hidden)
        decoder = DenseDecoder(latent_dim, image_shape, hidden)
        super().__init__(
            encoder, decoder, Sparse(sparsity, rho, weight), latent_dim, image_shape, optimizer,
            hidden=list(hidden),
        )  # fmt: skip


class ContractiveAE(Autoencoder):
    """Dense networks with the contractive objective (``model=contractive_ae``)."""

    def __init__(
        self,
        latent_dim: LatentDim,
        hidden: Widths = (),
        activation: Literal["relu", "sigmoid"] = "sigmoid",
        weight: Annotated[float, Ge(0)] = 1e-4,
        optimizer: OptimizerFactory | None = None,
        image_shape: ImageShape = MNIST_SHAPE,
    ) -> None:
        encoder = DenseEncoder(latent_dim, image_shape, hidden)
        decoder = DenseDecoder(latent_dim, image_shape, hidden)
        objective = Contractive(activation, weight)
        super().__init__(
            encoder, decoder, objective, latent_dim, image_shape, optimizer, hidden=list(hidden)
        )


class DenseVAE(Autoencoder):
    """Dense networks with the variational objective (``model=vae``)."""

    def __init__(
        self,
        latent_dim: LatentDim,
        hidden: Widths = (512,),
        beta: Annotated[float, Ge(0)] = 1.0,
        kl_warmup_epochs: Annotated[int, Ge(0)] = 0,
        recon_loss: Literal["bce", "mse"] = "bce",
        optimizer: OptimizerFactory | None = None,
        image_shape: ImageShape = MNIST_SHAPE,
    ) -> None:
        encoder = DenseEncoder(latent_dim, image_shape, hidden, per_unit=2)
        decoder = DenseDecoder(latent_dim, image_shape, hidden)
        objective = Variational(beta, kl_warmup_epochs, recon_loss)
        super().__init__(
            encoder, decoder, objective, latent_dim, image_shape, optimizer, hidden=list(hidden)
        )


class ConvVAE(Autoencoder):
    """Conv networks with the variational objective (``model=conv_vae``)."""

    def __init__(
        self,
        latent_dim: LatentDim,
        channels: Widths = (32, 64),
        beta: Annotated[float, Ge(0)] = 1.0,
        kl_warmup_epochs: Annotated[int, Ge(0)] = 0,
        recon_loss: Literal["bce", "mse"] = "bce",
        optimizer: OptimizerFactory | None = None,
        image_shape: ImageShape = MNIST_SHAPE,
    ) -> None:
        encoder = ConvEncoder(latent_dim, image_shape, channels, per_unit=2)
        decoder = ConvDecoder(latent_dim, image_shape, channels)
        objective = Variational(beta, kl_warmup_epochs, recon_loss)
        super().__init__(
            encoder, decoder, objective, latent_dim, image_shape, optimizer,
            channels=list(channels),
        )  # fmt: skip
