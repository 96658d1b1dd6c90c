"""The sparse objective: a penalty that keeps most code units near zero on any one image.

Sparsity, not a narrow bottleneck, is what stops the network from copying its input, so the
code may be overcomplete (``latent`` larger than the image's pixels).
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from annotated_types import Ge, Gt, Lt

from ae_lab.models.module import Batch, Composed
from ae_lab.models.objectives.base import Objective


def l1_penalty(code: torch.Tensor) -> torch.Tensor:
    """||h||_1 per image, averaged over the batch."""
    return code.abs().sum(dim=1).mean()


def kl_sparsity_penalty(code: torch.Tensor, rho: float, eps: float = 1e-6) -> torch.Tensor:
    """sum_j KL(Bernoulli(rho) || Bernoulli(rho_hat_j)), rho_hat_j the batch-mean activation of
    unit j. Summed over units, so each unit feels the same pressure whatever the latent size."""
    rho_hat = code.mean(dim=0).clamp(eps, 1 - eps)
    kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
    return kl.sum()


class Sparse(Objective):
    """loss = MSE + weight * penalty, on the encoder's output through a code activation.

    ``sparsity="kl"`` (the classic sparse autoencoder) uses a sigmoid code, so each unit's
    activation is a firing probability whose batch mean is pulled towards ``rho``; a unit counts
    as active on an image when it exceeds 0.5. ``sparsity="l1"`` uses a ReLU code, penalises its
    L1 norm and yields exact zeros; a unit is active when it is above 0. The two penalties live on
    different scales, so change ``weight`` with ``sparsity`` (see docs/models.md).
    """

    name = "mse_sparsity"

    def __init__(
        self,
        sparsity: Literal["kl", "l1"] = "kl",
        rho: Annotated[float, Gt(0), Lt(1)] = 0.05,
        weight: Annotated[float, Ge(0)] = 0.01,
    ) -> None:
        super().__init__()
        self.sparsity = sparsity
        self.rho = float(rho)
        self.weight = float(weight)
        self.active_threshold = 0.5 if sparsity == "kl" else 0.0

    def code(self, model: Composed, x: torch.Tensor) -> torch.Tensor:
        h = model.encoder(x)
        return torch.sigmoid(h) if self.sparsity == "kl" else F.relu(h)

    def penalty(self, code: torch.Tensor) -> torch.Tensor:
        if self.sparsity == "kl":
            return kl_sparsity_penalty(code, self.rho)
        return l1_penalty(code)

    def terms(
        self,
        model: Composed,
        batch: Batch,
        code: torch.Tensor,
        logits: torch.Tensor,
        recon: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        mse = F.mse_loss(recon, batch["target"])
        penalty = self.penalty(code)
        detached = code.detach()
        return {
            "loss": mse + self.weight * penalty,
            "recon": mse,
            "sparsity_penalty": penalty,
            "code_mean": detached.mean(),
            "active_frac": (detached > self.active_threshold).float().mean(),
        }
