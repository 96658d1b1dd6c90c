"""Contractive autoencoder: penalises how much the code moves when the input moves.

The penalty is the squared Frobenius norm of the encoder's Jacobian d code / d input, which
makes the code locally insensitive to directions the data does not vary along.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import jacrev, vmap

from ae_lab.models.base import AutoencoderModule, Batch, OptimizerFactory
from ae_lab.models.components import dense_decoder, dense_encoder

ACTIVATIONS: dict[str, type[nn.Module]] = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU}


Encoder = Callable[[torch.Tensor], torch.Tensor]


def jacobian_frobenius_sq(f: Encoder, x: torch.Tensor) -> torch.Tensor:
    """||d f(x_i) / d x_i||_F^2 for every sample of a batch, by exact per-sample Jacobians.

    ``f`` maps a batch to a batch; each sample goes through it alone, so batch statistics
    (there are none in the dense encoders) could not leak between samples. Differentiable with
    respect to the parameters ``f`` closes over.
    """

    def one(xi: torch.Tensor) -> torch.Tensor:
        return f(xi.unsqueeze(0)).squeeze(0)

    jac = vmap(jacrev(one))(x)
    return jac.pow(2).flatten(1).sum(dim=1)


class ContractiveAE(AutoencoderModule):
    """Dense encoder with a ``sigmoid`` or ``relu`` code; loss = MSE + weight * ||J||_F^2.

    With no hidden layers (the classic CAE) the Jacobian is diag(act'(Wx + b)) W and the penalty
    has a closed form that costs one matrix product; with hidden layers it is computed exactly,
    sample by sample, with ``torch.func`` (``jacrev`` under ``vmap``), one backward pass per code
    unit, so deep encoders with wide codes are slower.
    """

    objective = "mse_contractive"

    def __init__(
        self,
        latent_dim: int,
        hidden: list[int] = (),  # type: ignore[assignment]
        activation: str = "sigmoid",
        weight: float = 1e-4,
        optimizer: OptimizerFactory | None = None,
    ) -> None:
        super().__init__(latent_dim, optimizer)
        self.activation = activation
        self.weight = float(weight)
        self.closed_form = len(hidden) == 0
        self.encoder = nn.Sequential(
            dense_encoder(list(hidden), latent_dim), ACTIVATIONS[activation]()
        )
        self.decoder = dense_decoder(list(hidden), latent_dim)

    def contractive_penalty(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """Batch mean of ||d code / d x||_F^2; ``code`` must be ``self.encode(x)``."""
        if not self.closed_form:
            return jacobian_frobenius_sq(self.encoder, x).mean()
        # one layer: J = diag(act'(a)) W, so ||J||_F^2 = sum_j act'(a_j)^2 ||W_j||^2
        linear: nn.Linear = self.encoder[0][-1][0]  # Flatten, then mlp = (Linear,)
        sigmoid = self.activation == "sigmoid"
        slope = code * (1 - code) if sigmoid else (code > 0).to(code.dtype)
        return (slope.pow(2) @ linear.weight.pow(2).sum(dim=1)).mean()

    def loss_terms(
        self, batch: Batch, code: torch.Tensor, logits: torch.Tensor, recon: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        mse = F.mse_loss(recon, batch["target"])
        penalty = self.contractive_penalty(batch["input"], code)
        return {"loss": mse + self.weight * penalty, "recon": mse, "contractive_penalty": penalty}
