"""Variational autoencoders: reparameterised sampling, KL to N(0, I), beta and KL warm-up."""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
import torch.nn.functional as F

from ae_lab.models.base import AutoencoderModule, Batch, EvalOutputs, OptimizerFactory, Step
from ae_lab.models.components import conv_decoder, conv_encoder, dense_decoder, dense_encoder

log = logging.getLogger(__name__)

# the one rule for which targets have a likelihood to estimate (``neg_elbo`` here, ``test/nll`` in
# ae_lab.evaluation.likelihood), and the one line that says why grey ones have none
GREY_TARGETS = (
    "the targets are grey, not binary, and a Bernoulli likelihood of grey pixels is no "
    "likelihood; set data.binarize_target=sample (or threshold) to score one "
    "(transform=binarize binarizes only the encoder's input)"
)
# which evaluation a ``neg_elbo`` draw belongs to (part of its generator's seed)
NOISE_STAGES = {"val": 1, "test": 2}


def is_binary(images: torch.Tensor) -> bool:
    """Whether every pixel is 0 or 1: the only images a Bernoulli likelihood is a likelihood of."""
    return bool(((images == 0) | (images == 1)).all())


def draw_seed(*key: int) -> int:
    """A generator seed for the draw named by ``key`` (non-negative integers: the run's seed,
    the evaluation, the batch, ...): independent streams for different keys (numpy's
    ``SeedSequence``), the same stream for the same key."""
    return int(np.random.SeedSequence(list(key)).generate_state(1, np.uint64)[0] >> 1)


def log_likelihood(logits: torch.Tensor, x: torch.Tensor, recon_loss: str) -> torch.Tensor:
    """log p(x | z) per image. ``bce``: Bernoulli with these logits (a true likelihood only for
    binary x). ``mse``: the Gaussian with variance 1/2 whose negative log is the summed squared
    error the model trains on, plus its normaliser (D/2) log(pi)."""
    if recon_loss == "bce":
        nll = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
        return -nll.flatten(1).sum(1)
    sse = (torch.sigmoid(logits) - x).pow(2).flatten(1).sum(1)
    return -sse - 0.5 * x[0].numel() * math.log(math.pi)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per sample, summed over latent dimensions."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


class VariationalAutoencoder(AutoencoderModule):
    """Loss = reconstruction summed over pixels + beta * KL, both averaged over the batch.

    ``recon_loss="bce"`` is the Bernoulli likelihood (the usual choice on MNIST), ``"mse"`` a
    Gaussian one (sum of squared errors). With ``kl_warmup_epochs > 0`` beta ramps linearly from 0
    over that many epochs, which keeps the posterior from collapsing early in training.
    Evaluation decodes the posterior mean, so ``val/mse`` measures the deterministic reconstruction
    and ``val/loss`` (the checkpoint monitor) is the reconstruction term at the posterior mean plus
    beta * KL: not the negative ELBO, and it can fall below the test NLL. Evaluation also logs
    ``val/neg_elbo`` and ``test/neg_elbo``: -log p(x | z) at one z drawn from q(z | x) plus the
    KL with beta 1, an unbiased estimate of the negative ELBO in nats, which bounds the NLL from
    above. Each batch's draw has its own generator (``draw_seed``), seeded from the run's seed
    (``noise_seed``, set by the entrypoint), the evaluation (the training step of a validation
    pass; the test batches are the same draws whenever a checkpoint is tested), the batch index
    and the process (``noise_key``): reproducible and the same after an exact resume, yet
    independent between batches, validation passes and seeds, and no draw from the global
    generator training uses.
    Only binary targets have a likelihood (``data.binarize_target``): on grey ones there is no
    ``neg_elbo``, and one line (``GREY_TARGETS``) says why, as for ``test/nll``.
    """

    objective = "neg_elbo"
    # the rank-local key of the evaluation batch being scored (``noise_key``), set by the step
    _noise_key: tuple[int, ...] = (0,)
    _grey_said = False

    def __init__(
        self,
        latent_dim: int,
        beta: float = 1.0,
        kl_warmup_epochs: int = 0,
        recon_loss: str = "bce",
        optimizer: OptimizerFactory | None = None,
    ) -> None:
        super().__init__(latent_dim, optimizer)
        self.beta = float(beta)
        self.kl_warmup_epochs = int(kl_warmup_epochs)
        self.recon_loss = recon_loss

    @property
    def effective_beta(self) -> float:
        """beta times a linear ramp from 0 at the first optimizer step to 1 after
        ``kl_warmup_epochs`` epochs, updated every step. Evaluation always uses the full beta, so
        ``val/loss`` (what checkpoints monitor) is one objective across epochs."""
        if self.kl_warmup_epochs <= 0 or self._trainer is None or not self.training:
            return self.beta
        trainer = self.trainer
        per_epoch = math.ceil(trainer.num_training_batches / trainer.accumulate_grad_batches)
        steps = self.kl_warmup_epochs * max(1, per_epoch)
        return self.beta * min(1.0, trainer.global_step / steps)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.posterior(x)[0]

    def shared_step(self, batch: Batch) -> Step:
        mu, logvar = self.posterior(batch["input"])
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        logits = self.decoder(z)
        target = batch["target"]
        n = target.shape[0]
        if self.recon_loss == "bce":
            recon_loss = F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / n
        else:
            recon_loss = F.mse_loss(torch.sigmoid(logits), target, reduction="sum") / n
        kl = gaussian_kl(mu, logvar).mean()
        beta = self.effective_beta
        terms = {"loss": recon_loss + beta * kl, "recon": recon_loss, "kl": kl}
        if self.kl_warmup_epochs > 0:
            terms["beta"] = torch.tensor(beta, device=kl.device)
        if not self.training:
            if is_binary(target):
                terms["neg_elbo"] = self.neg_elbo(target, mu, logvar) + kl.detach()
            elif not self._grey_said:
                self._grey_said = True
                log.warning("%s skipped: %s", "val/neg_elbo and test/neg_elbo", GREY_TARGETS)
        return Step(terms, torch.sigmoid(logits), z)

    def noise_key(self, stage: str, batch_idx: int) -> tuple[int, ...]:
        """What seeds the ``neg_elbo`` draw of evaluation batch ``batch_idx``: the run's seed,
        the stage, for validation the global step (each pass its own draws), the batch and the
        process's rank (each DDP process its own)."""
        trainer = self._trainer
        step = trainer.global_step if trainer is not None and stage == "val" else 0
        rank = trainer.global_rank if trainer is not None else 0
        return (self.noise_seed, NOISE_STAGES[stage], step, batch_idx, rank)

    def validation_step(self, batch: Batch, batch_idx: int) -> EvalOutputs:
        self._noise_key = self.noise_key("val", batch_idx)
        return super().validation_step(batch, batch_idx)

    def test_step(self, batch: Batch, batch_idx: int) -> EvalOutputs:
        self._noise_key = self.noise_key("test", batch_idx)
        return super().test_step(batch, batch_idx)

    def neg_elbo(
        self, target: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
    ) -> torch.Tensor:
        """The batch mean of -log p(target | z), z one draw from q(z | x) per image with the
        generator of this batch's ``noise_key`` (add the KL for the negative ELBO)."""
        gen = torch.Generator(device=mu.device).manual_seed(draw_seed(*self._noise_key))
        eps = torch.randn(mu.shape, generator=gen, device=mu.device, dtype=mu.dtype)
        logits = self.decoder(mu + eps * (0.5 * logvar).exp())
        return -log_likelihood(logits, target, self.recon_loss).mean()


class DenseVAE(VariationalAutoencoder):
    """784 -> hidden... -> (mu, logvar); decoder mirrors it."""

    def __init__(
        self,
        latent_dim: int,
        hidden: list[int] = (512,),  # type: ignore[assignment]
        beta: float = 1.0,
        kl_warmup_epochs: int = 0,
        recon_loss: str = "bce",
        optimizer: OptimizerFactory | None = None,
    ) -> None:
        super().__init__(latent_dim, beta, kl_warmup_epochs, recon_loss, optimizer)
        self.encoder = dense_encoder(list(hidden), 2 * latent_dim)
        self.decoder = dense_decoder(list(hidden), latent_dim)


class ConvVAE(VariationalAutoencoder):
    """Conv encoder (BatchNorm, average pooling) to (mu, logvar); transposed-conv decoder."""

    def __init__(
        self,
        latent_dim: int,
        channels: list[int] = (32, 64),  # type: ignore[assignment]
        beta: float = 1.0,
        kl_warmup_epochs: int = 0,
        recon_loss: str = "bce",
        optimizer: OptimizerFactory | None = None,
    ) -> None:
        super().__init__(latent_dim, beta, kl_warmup_epochs, recon_loss, optimizer)
        self.encoder = conv_encoder(2 * latent_dim, list(channels))
        self.decoder = conv_decoder(latent_dim, list(channels))
