"""Likelihoods of images under a decoder, and the draws an evaluation makes to estimate them.

Only binary targets have a Bernoulli likelihood (``data.binarize_target``): on grey ones no
``neg_elbo`` or ``test/nll`` is logged, and one line (``GREY_TARGETS``) says why.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

# the one rule for which targets have a likelihood to estimate (``neg_elbo``, and ``test/nll`` in
# ae_lab.evaluation.likelihood), and the one line that says why grey ones have none
GREY_TARGETS = (
    "the targets are grey, not binary, and a Bernoulli likelihood of grey pixels is no "
    "likelihood; set data.binarize_target=sample (or threshold) to score one "
    "(transform=binarize binarizes only the encoder's input)"
)
# which evaluation a ``neg_elbo`` draw belongs to (part of its generator's seed)
NOISE_STAGES = {"val": 1, "test": 2}
LOG_2PI = math.log(2 * math.pi)


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


def log_likelihoods(logits: torch.Tensor, targets: torch.Tensor, recon_loss: str) -> torch.Tensor:
    """log p(target_b | z_kb) as (k, B), from logits (k, B, pixels) of k draws of B images:
    ``log_likelihood`` without repeating the targets k times. For ``bce`` the Bernoulli
    log-likelihood is sum(x * l) - sum(softplus(l)) (binary cross-entropy with logits,
    rearranged), two passes over the logits where the repeated targets and the cross-entropy's
    own terms took several."""
    x = targets.flatten(1).to(logits.dtype)
    if recon_loss == "bce":
        return torch.einsum("kbp,bp->kb", logits, x) - F.softplus(logits).sum(-1)
    sse = (torch.sigmoid(logits) - x).square().sum(-1)
    return -sse - 0.5 * x.shape[1] * math.log(math.pi)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per sample, summed over latent dimensions."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))), summed over the last dimension."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).square() * (-logvar).exp()).sum(-1)
