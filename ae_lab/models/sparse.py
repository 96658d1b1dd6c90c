"""Sparse autoencoder: a penalty that keeps most code units near zero on any one image.

Sparsity, not a narrow bottleneck, is what stops the network from copying its input, so the
code may be overcomplete (``latent`` larger than the 784 pixels).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ae_lab.models.base import AutoencoderModule, Batch, OptimizerFactory
from ae_lab.models.components import dense_decoder, dense_encoder


def l1_penalty(code: torch.Tensor) -> torch.Tensor:
    """||h||_1 per image, averaged over the batch."""
    return code.abs().sum(dim=1).mean()


def kl_sparsity_penalty(code: torch.Tensor, rho: float, eps: float = 1e-6) -> torch.Tensor:
    """sum_j KL(Bernoulli(rho) || Bernoulli(rho_hat_j)), rho_hat_j the batch-mean activation of
    unit j. Summed over units, so each unit feels the same pressure whatever the latent size."""
    rho_hat = code.mean(dim=0).clamp(eps, 1 - eps)
    kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
    return kl.sum()


class SparseAE(AutoencoderModule):
    """784 -> hidden... -> code -> reversed hidden... -> 784, loss = MSE + weight * penalty.

    ``sparsity="kl"`` (the classic sparse autoencoder) uses a sigmoid code, so each unit's
    activation is a firing probability whose batch mean is pulled towards ``rho``; a unit counts
    as active on an image when it exceeds 0.5. ``sparsity="l1"`` uses a ReLU code, penalises its
    L1 norm and yields exact zeros; a unit is active when it is above 0. The two penalties live on
    different scales, so change ``weight`` with ``sparsity`` (see docs/models.md).
    """

    objective = "mse_sparsity"

    def __init__(
        self,
        latent_dim: int,
        hidden: list[int] = (),  # type: ignore[assignment]
        sparsity: str = "kl",
        rho: float = 0.05,
        weight: float = 0.01,
        optimizer: OptimizerFactory | None = None,
    ) -> None:
        super().__init__(latent_dim, optimizer)
        self.sparsity = sparsity
        self.rho = float(rho)
        self.weight = float(weight)
        self.active_threshold = 0.5 if sparsity == "kl" else 0.0
        activation = nn.Sigmoid() if sparsity == "kl" else nn.ReLU()
        self.encoder = nn.Sequential(dense_encoder(list(hidden), latent_dim), activation)
        self.decoder = dense_decoder(list(hidden), latent_dim)

    def sparsity_penalty(self, code: torch.Tensor) -> torch.Tensor:
        if self.sparsity == "kl":
            return kl_sparsity_penalty(code, self.rho)
        return l1_penalty(code)

    def loss_terms(
        self, batch: Batch, code: torch.Tensor, logits: torch.Tensor, recon: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        mse = F.mse_loss(recon, batch["target"])
        penalty = self.sparsity_penalty(code)
        detached = code.detach()
        return {
            "loss": mse + self.weight * penalty,
            "recon": mse,
            "sparsity_penalty": penalty,
            "code_mean": detached.mean(),
            "active_frac": (detached > self.active_threshold).float().mean(),
        }
