"""The objective's contract with the ``Autoencoder`` that holds it, and the plain one (MSE).

An objective turns a batch into the loss terms the model optimises and logs (``Step``). It is a
module of the model, so whatever it learns (a VampPrior's pseudo-inputs, a codebook) is trained,
saved and moved with it; it reaches the model's encoder and decoder through the ``model`` each of
its methods is given, never holding the model itself.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ae_lab.models.module import Batch, Composed, Step


class Objective(nn.Module):
    """The plain autoencoder's objective: the MSE of the reconstruction against the target.

    A variant overrides ``code`` (what the decoder reads), ``terms`` (the loss and what it logs)
    or, when one forward pass is not its shape, ``step`` itself."""

    # the loss in a word: runs of different objectives never share a loss chart
    # (ae_lab.callbacks.comparison)
    name = "mse"
    # the values the encoder gives per code unit (2: a Gaussian posterior's mean and log-variance)
    per_unit = 1
    # a likelihood to estimate (ae_lab.evaluation.likelihood): a variational objective's
    variational = False
    # why there is none, said in one line where the NLL evaluation skips the model; None: silent
    no_likelihood: str | None = None

    def code(self, model: Composed, x: torch.Tensor) -> torch.Tensor:
        """The code the decoder reads in training."""
        return model.encoder(x)

    def encode(self, model: Composed, x: torch.Tensor) -> torch.Tensor:
        """The code of ``x`` as evaluations read it (a VAE's posterior mean)."""
        return self.code(model, x)

    def evaluating(self, stage: str, model: Composed, batch_idx: int) -> None:
        """Called before each validation or test batch (``stage``: val or test)."""

    def step(self, model: Composed, batch: Batch) -> Step:
        code = self.code(model, batch["input"])
        logits = model.decoder(code)
        recon = torch.sigmoid(logits)
        return Step(self.terms(model, batch, code, logits, recon), recon, code)

    def terms(
        self,
        model: Composed,
        batch: Batch,
        code: torch.Tensor,
        logits: torch.Tensor,
        recon: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        return {"loss": F.mse_loss(recon, batch["target"])}

    def settings(self) -> dict[str, Any]:
        """What the checkpoint's hyperparameters record of this objective besides its class."""
        return {}


class Reconstruction(Objective):
    """The plain autoencoder: loss = MSE of the reconstruction (``Objective`` as it is)."""
