"""The prior p(z) of a variational objective: N(0, I), or a VampPrior.

A VampPrior (Tomczak and Welling, 2018) is the mixture of the encoder's posteriors at
``n_pseudo`` learned pseudo-inputs, p(z) = 1/K sum_k q(z | u_k): a prior the data shapes, which
the model trains with everything else.
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
from annotated_types import Ge
from torch import nn

from ae_lab.models.likelihood import LOG_2PI
from ae_lab.models.module import Composed
from ae_lab.models.types import ImageShape, shape_of


class StandardPrior(nn.Module):
    """N(0, I)."""

    def log_density(self, model: Composed, z: torch.Tensor) -> torch.Tensor:
        """log p(z) over the last dimension."""
        return -0.5 * (z.square() + LOG_2PI).sum(-1)

    def sample(
        self, model: Composed, n: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        z = torch.randn(n, model.latent_dim, generator=generator)
        return z.to(model.device)


class VampPrior(nn.Module):
    """1/K sum_k q(z | u_k) over K = ``n_pseudo`` pseudo-inputs u_k, images in (0, 1) (the
    sigmoid of a learned tensor, which starts near mid-grey)."""

    def __init__(self, n_pseudo: Annotated[int, Ge(1)], image_shape: ImageShape) -> None:
        super().__init__()
        self.pseudo = nn.Parameter(0.01 * torch.randn(n_pseudo, *shape_of(image_shape)))

    def components(self, model: Composed) -> tuple[torch.Tensor, torch.Tensor]:
        """The mixture's (means, log-variances), (K, D) each: the pseudo-inputs' posteriors."""
        return model.posterior(torch.sigmoid(self.pseudo))

    def log_density(self, model: Composed, z: torch.Tensor) -> torch.Tensor:
        """log p(z) = logsumexp_k log q(z | u_k) - log K, over the last dimension of ``z``.

        The squared distances to the K components are expanded into matrix products,
        sum_d (z_d - m_kd)^2 / v_kd = z^2 @ (1/v)^T - 2 z @ (m/v)^T + sum_d m_kd^2 / v_kd, so no
        (..., K, D) tensor is made: the NLL's thousands of draws per image against hundreds of
        components cost a few matrix products. In float64, where the expansion's terms cancel."""
        mu, logvar = self.components(model)
        zz, mu, logvar = z.double(), mu.double(), logvar.double()
        precision = (-logvar).exp()  # (K, D)
        quadratic = (
            zz.square() @ precision.T
            - 2 * zz @ (mu * precision).T
            + (mu.square() * precision).sum(-1)
        )  # (..., K)
        per_component = -0.5 * (quadratic + logvar.sum(-1) + mu.shape[-1] * LOG_2PI)
        return (torch.logsumexp(per_component, -1) - math.log(len(mu))).to(z.dtype)

    def sample(
        self, model: Composed, n: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """A component drawn uniformly per sample, then z from it."""
        mu, logvar = self.components(model)
        device = mu.device
        which = torch.randint(len(mu), (n,), generator=generator).to(device)
        eps = torch.randn(n, mu.shape[1], generator=generator).to(device)
        return mu[which] + eps * (0.5 * logvar[which]).exp()
