"""The contractive objective: penalises how much the code moves when the input moves.

The penalty is the squared Frobenius norm of the encoder's Jacobian d code / d input, which
makes the code locally insensitive to directions the data does not vary along.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from annotated_types import Ge
from torch import nn
from torch.func import jacrev, vmap

from ae_lab.models.module import Batch, Composed
from ae_lab.models.objectives.base import Objective

Encoder = Callable[[torch.Tensor], torch.Tensor]
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sigmoid": torch.sigmoid,
    "relu": F.relu,
}


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


@contextlib.contextmanager
def running_statistics(encoder: nn.Module) -> Iterator[None]:
    """The encoder's batch norms on their running statistics inside the block: a per-sample
    Jacobian sees one image at a time, which has no batch statistics to normalise by (and
    ``torch.func`` may not update the running ones)."""
    norms = [m for m in encoder.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    modes = [m.training for m in norms]
    for m in norms:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(norms, modes, strict=True):
            m.train(mode)


class Contractive(Objective):
    """A ``sigmoid`` or ``relu`` code; loss = MSE + weight * ||J||_F^2.

    With a dense encoder of no hidden layers (the classic CAE) the Jacobian is
    diag(act'(Wx + b)) W and the penalty has a closed form that costs one matrix product; else it
    is computed exactly, sample by sample, with ``torch.func`` (``jacrev`` under ``vmap``), one
    backward pass per code unit, so deep encoders with wide codes are slower. An encoder with batch
    norms (a conv one) is differentiated on their running statistics.
    """

    name = "mse_contractive"

    def __init__(
        self,
        activation: Literal["relu", "sigmoid"] = "sigmoid",
        weight: Annotated[float, Ge(0)] = 1e-4,
    ) -> None:
        super().__init__()
        self.activation = activation
        self.weight = float(weight)

    def code(self, model: Composed, x: torch.Tensor) -> torch.Tensor:
        return ACTIVATIONS[self.activation](model.encoder(x))

    def single_linear(self, model: Composed) -> nn.Linear | None:
        """The encoder's one layer, where it has no other (the closed form's case)."""
        single = getattr(model.encoder, "single_linear", None)
        return single() if single is not None else None

    def penalty(self, model: Composed, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        """Batch mean of ||d code / d x||_F^2; ``code`` must be ``self.code(model, x)``."""
        linear = self.single_linear(model)
        if linear is None:
            with running_statistics(model.encoder):
                return jacobian_frobenius_sq(lambda v: self.code(model, v), x).mean()
        # one layer: J = diag(act'(a)) W, so ||J||_F^2 = sum_j act'(a_j)^2 ||W_j||^2
        sigmoid = self.activation == "sigmoid"
        slope = code * (1 - code) if sigmoid else (code > 0).to(code.dtype)
        return (slope.pow(2) @ linear.weight.pow(2).sum(dim=1)).mean()

    def terms(
        self,
        model: Composed,
        batch: Batch,
        code: torch.Tensor,
        logits: torch.Tensor,
        recon: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        mse = F.mse_loss(recon, batch["target"])
        penalty = self.penalty(model, batch["input"], code)
        return {"loss": mse + self.weight * penalty, "recon": mse, "contractive_penalty": penalty}
