"""The variational objective: reparameterised sampling, a KL to the prior, beta and KL warm-up.

Loss = reconstruction summed over pixels + beta * KL, both averaged over the batch.
``recon_loss="bce"`` is the Bernoulli likelihood (the usual choice on MNIST), ``"mse"`` a
Gaussian one (sum of squared errors). With ``kl_warmup_epochs > 0`` beta ramps linearly from 0
over that many epochs, which keeps the posterior from collapsing early in training.
``prior="standard"`` is N(0, I), whose KL has a closed form; ``prior="vamp"`` a VampPrior of
``n_pseudo`` pseudo-inputs (``prior.py``), whose KL is estimated at the draw of z.

Evaluation decodes the posterior mean, so ``val/mse`` measures the deterministic reconstruction
and ``val/loss`` (the checkpoint monitor) is the reconstruction term at the posterior mean plus
beta * KL: not the negative ELBO, and it can fall below the test NLL. Evaluation also logs
``val/neg_elbo`` and ``test/neg_elbo``: -log p(x | z) at one z drawn from q(z | x) plus the KL
with beta 1, an unbiased estimate of the negative ELBO in nats, which bounds the NLL from above.
Each batch's draw has its own generator (``draw_seed``), seeded from the run's seed
(``model.noise_seed``, set by the entrypoint), the evaluation (the training step of a validation
pass; the test batches are the same draws whenever a checkpoint is tested), the batch index and
the process (``noise_key``): reproducible and the same after an exact resume, yet independent
between batches, validation passes and seeds, and no draw from the global generator training
uses. Only binary targets have a likelihood (``data.binarize_target``): on grey ones there is no
``neg_elbo``, and one line (``GREY_TARGETS``) says why, as for ``test/nll``.
"""

from __future__ import annotations

import logging
import math
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from annotated_types import Ge

from ae_lab.models.likelihood import (
    GREY_TARGETS,
    NOISE_STAGES,
    draw_seed,
    gaussian_kl,
    is_binary,
    log_likelihood,
    log_likelihoods,
    log_normal,
)
from ae_lab.models.module import Batch, Composed, Step
from ae_lab.models.objectives.base import Objective
from ae_lab.models.objectives.prior import StandardPrior, VampPrior
from ae_lab.models.types import MNIST_SHAPE, ImageShape

log = logging.getLogger(__name__)
Prior = Literal["standard", "vamp"]


class Variational(Objective):
    name = "neg_elbo"
    per_unit = 2
    variational = True
    _grey_said = False

    def __init__(
        self,
        beta: Annotated[float, Ge(0)] = 1.0,
        kl_warmup_epochs: Annotated[int, Ge(0)] = 0,
        recon_loss: Literal["bce", "mse"] = "bce",
        prior: Prior = "standard",
        n_pseudo: Annotated[int, Ge(1)] = 500,
        image_shape: ImageShape = MNIST_SHAPE,
    ) -> None:
        super().__init__()
        self.beta = float(beta)
        self.kl_warmup_epochs = int(kl_warmup_epochs)
        self.recon_loss = recon_loss
        self.prior_name = prior
        self.prior = VampPrior(n_pseudo, image_shape) if prior == "vamp" else StandardPrior()
        # the rank-local key of the evaluation batch being scored (``noise_key``)
        self._noise_key: tuple[int, ...] = (0,)

    def settings(self) -> dict[str, Any]:
        return {"prior": self.prior_name}

    # ------------------------------------------------------------------ the distributions
    def posterior(self, model: Composed, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = model.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def encode(self, model: Composed, x: torch.Tensor) -> torch.Tensor:
        return self.posterior(model, x)[0]

    def log_prior(self, model: Composed, z: torch.Tensor) -> torch.Tensor:
        """log p(z) over the last dimension."""
        return self.prior.log_density(model, z)

    def sample_prior(
        self, model: Composed, n: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return self.prior.sample(model, n, generator)

    def kl(
        self, model: Composed, mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor
    ) -> torch.Tensor:
        """KL(q(z | x) || p(z)) per image: in closed form for N(0, I), else log q(z|x) - log p(z)
        at the draw ``z``."""
        if isinstance(self.prior, StandardPrior):
            return gaussian_kl(mu, logvar)
        return log_normal(z, mu, logvar) - self.log_prior(model, z)

    def log_importance_weights(
        self,
        model: Composed,
        mu: torch.Tensor,
        logvar: torch.Tensor,
        targets: torch.Tensor,
        k: int,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """log p(x | z) + log p(z) - log q(z | x) as (k, B) for k draws z = mu + std * eps. For
        N(0, I), log p(z) - log q(z | x) comes from the draws' noise alone: the 2 pi terms cancel
        and (z - mu) / std = eps."""
        eps = torch.randn((k, *mu.shape), generator=generator, device=mu.device, dtype=mu.dtype)
        z = torch.addcmul(mu, (0.5 * logvar).exp(), eps)  # (k, B, D)
        # reshape: a decoder that crops its output (ConvDecoder, odd sides) gives no view
        logits = model.decoder(z.flatten(0, 1)).reshape(k, len(mu), -1)
        half_logvar = 0.5 * logvar.sum(-1)
        if isinstance(self.prior, StandardPrior):
            log_prior_over_q = 0.5 * (eps.square() - z.square()).sum(-1) + half_logvar
        else:
            log_q = -0.5 * (eps.square() + math.log(2 * math.pi)).sum(-1) - half_logvar
            log_prior_over_q = self.log_prior(model, z) - log_q
        return log_likelihoods(logits, targets, self.recon_loss) + log_prior_over_q

    # ------------------------------------------------------------------ training and evaluation
    def effective_beta(self, model: Composed) -> float:
        """beta times a linear ramp from 0 at the first optimizer step to 1 after
        ``kl_warmup_epochs`` epochs, updated every step. Evaluation always uses the full beta,
        so ``val/loss`` (what checkpoints monitor) is one objective across epochs."""
        trainer = model._trainer
        if self.kl_warmup_epochs <= 0 or trainer is None or not self.training:
            return self.beta
        per_epoch = math.ceil(trainer.num_training_batches / trainer.accumulate_grad_batches)
        steps = self.kl_warmup_epochs * max(1, per_epoch)
        return self.beta * min(1.0, trainer.global_step / steps)

    def reconstruction(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The reconstruction term summed over pixels, averaged over the batch."""
        n = target.shape[0]
        if self.recon_loss == "bce":
            return F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / n
        return F.mse_loss(torch.sigmoid(logits), target, reduction="sum") / n

    def step(self, model: Composed, batch: Batch) -> Step:
        mu, logvar = self.posterior(model, batch["input"])
        target = batch["target"]
        if self.training:
            z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
            kl_at = z
        else:
            z, kl_at = mu, self.evaluation_draw(mu, logvar)
        logits = model.decoder(z)
        recon_loss = self.reconstruction(logits, target)
        kl = self.kl(model, mu, logvar, kl_at).mean()
        beta = self.effective_beta(model)
        terms = {"loss": recon_loss + beta * kl, "recon": recon_loss, "kl": kl}
        if self.kl_warmup_epochs > 0:
            terms["beta"] = torch.tensor(beta, device=kl.device)
        if not self.training:
            terms.update(self.evaluation_terms(model, batch, mu, logvar, kl_at, kl))
        return Step(terms, torch.sigmoid(logits), z)

    def evaluation_terms(
        self,
        model: Composed,
        batch: Batch,
        mu: torch.Tensor,
        logvar: torch.Tensor,
        draw: torch.Tensor,
        kl: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """``neg_elbo`` at this batch's evaluation draw (binary targets only)."""
        target = batch["target"]
        if is_binary(target):
            logits = model.decoder(draw)
            nll = -log_likelihood(logits, target, self.recon_loss).mean()
            return {"neg_elbo": nll + kl.detach()}
        if not self._grey_said:
            self._grey_said = True
            log.warning("%s skipped: %s", "val/neg_elbo and test/neg_elbo", GREY_TARGETS)
        return {}

    def evaluating(self, stage: str, model: Composed, batch_idx: int) -> None:
        self._noise_key = noise_key(model, stage, batch_idx)

    def evaluation_generator(self, device: torch.device) -> torch.Generator:
        """The generator of this evaluation batch's draws (its ``noise_key``)."""
        return torch.Generator(device=device).manual_seed(draw_seed(*self._noise_key))

    def evaluation_draw(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """One z per image from q(z | x), drawn with this evaluation batch's generator."""
        gen = self.evaluation_generator(mu.device)
        eps = torch.randn(mu.shape, generator=gen, device=mu.device, dtype=mu.dtype)
        return mu + eps * (0.5 * logvar).exp()


def noise_key(model: Composed, stage: str, batch_idx: int) -> tuple[int, ...]:
    """What seeds the draws of evaluation batch ``batch_idx``: the run's seed, the stage, for
    validation the global step (each pass its own draws), the batch and the process's rank (each
    DDP process its own)."""
    trainer = model._trainer
    step = trainer.global_step if trainer is not None and stage == "val" else 0
    rank = trainer.global_rank if trainer is not None else 0
    return (model.noise_seed, NOISE_STAGES[stage], step, batch_idx, rank)
