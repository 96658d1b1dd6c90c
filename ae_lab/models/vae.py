"""The variational autoencoder's helpers under their earlier home: the likelihoods and draws
(``ae_lab.models.likelihood``), and ``is_variational``, which tells a model with a posterior and a
prior from the others."""

from __future__ import annotations

from typing import Any

from ae_lab.models.likelihood import (
    GREY_TARGETS,
    NOISE_STAGES,
    draw_seed,
    gaussian_kl,
    is_binary,
    log_likelihood,
)
from ae_lab.models.zoo import ConvVAE, DenseVAE

__all__ = [
    "ConvVAE",
    "DenseVAE",
    "GREY_TARGETS",
    "NOISE_STAGES",
    "draw_seed",
    "gaussian_kl",
    "is_binary",
    "is_variational",
    "log_likelihood",
]


def is_variational(model: Any) -> bool:
    """Whether ``model`` is an autoencoder with a variational objective (a VAE, an IWAE, either
    with a VampPrior): it has a posterior, a prior to sample and a likelihood to estimate."""
    return bool(getattr(model, "variational", False))
