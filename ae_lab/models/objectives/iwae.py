"""The importance-weighted autoencoder (Burda et al., 2016): the variational model trained on
the k-sample bound log 1/k sum_k p(x, z_k) / q(z_k | x), tighter than the ELBO (its k = 1) and
rising towards log p(x) as k grows.

Training minimises the negative bound (``loss``) with k draws per image. Evaluation's ``loss``
is the negative bound at k draws from each batch's own generator, logged as ``neg_iwae`` where the
targets are binary (as ``neg_elbo``), beside everything the variational objective logs
(``recon``, ``kl``, ``neg_elbo``: the one-sample bound), so the two bounds compare on one model.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
from annotated_types import Ge

from ae_lab.models.likelihood import is_binary
from ae_lab.models.module import Batch, Composed, Step
from ae_lab.models.objectives.variational import Prior, Variational
from ae_lab.models.types import MNIST_SHAPE, ImageShape


def iwae_bound(log_weights: torch.Tensor) -> torch.Tensor:
    """log 1/k sum_k w_k per image, from log-weights (k, B)."""
    return torch.logsumexp(log_weights, 0) - math.log(len(log_weights))


class ImportanceWeighted(Variational):
    """The variational objective with the k-sample bound as its loss; ``beta`` and the KL
    warm-up have no place in it (the bound weighs the prior as the likelihood does)."""

    name = "neg_iwae"

    def __init__(
        self,
        k: Annotated[int, Ge(1)] = 5,
        recon_loss: Literal["bce", "mse"] = "bce",
        prior: Prior = "standard",
        n_pseudo: Annotated[int, Ge(1)] = 500,
        image_shape: ImageShape = MNIST_SHAPE,
    ) -> None:
        super().__init__(1.0, 0, recon_loss, prior, n_pseudo, image_shape)
        self.k = int(k)

    def step(self, model: Composed, batch: Batch) -> Step:
        if not self.training:
            return self._evaluation_step(model, batch)
        mu, logvar = self.posterior(model, batch["input"])
        log_w = self.log_importance_weights(model, mu, logvar, batch["target"], self.k)
        with torch.no_grad():  # what the reconstruction and the KL come to, for the logs
            logits = model.decoder(mu)
            recon_loss = self.reconstruction(logits, batch["target"])
            z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
            kl = self.kl(model, mu, logvar, z).mean()
        terms = {"loss": -iwae_bound(log_w).mean(), "recon": recon_loss, "kl": kl}
        return Step(terms, torch.sigmoid(logits), mu)

    def _evaluation_step(self, model: Composed, batch: Batch) -> Step:
        """The variational objective's evaluation, its loss the negative bound at k draws from
        this batch's generator, logged as ``neg_iwae`` where the targets are binary."""
        step = super().step(model, batch)
        target = batch["target"]
        mu, logvar = self.posterior(model, batch["input"])
        gen = self.evaluation_generator(mu.device)
        log_w = self.log_importance_weights(model, mu, logvar, target, self.k, gen)
        step.terms["loss"] = -iwae_bound(log_w).mean()
        if is_binary(target):
            step.terms["neg_iwae"] = step.terms["loss"]
        return step
