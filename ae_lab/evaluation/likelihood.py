"""Importance-sampled negative log-likelihood of the test set under a VAE, in nats.

log p(x) >= ELBO; with K samples from the encoder, log mean_k p(x, z_k) / q(z_k | x) is a tighter
bound that approaches log p(x) as K grows (Burda et al., 2016). The literature's figure for a dense
VAE on binarized MNIST is about 87-90 nats: compare with ``data.binarize_target=sample``.
"""

from __future__ import annotations

import logging
import math
from typing import Annotated

import lightning as L
import torch
from annotated_types import Ge
from torchmetrics import MeanMetric

from ae_lab.evaluation.base import Evaluation
from ae_lab.evaluation.common import skip
from ae_lab.evaluation.context import EvalContext
from ae_lab.evaluation.record import BatchRecord
from ae_lab.models.base import AutoencoderModule
from ae_lab.models.likelihood import log_likelihoods
from ae_lab.models.vae import GREY_TARGETS, is_binary, is_variational, log_likelihood

__all__ = [
    "ImportanceSampledNLL",
    "importance_sampled_nll",
    "is_binary",
    "log_likelihood",
    "log_likelihoods",
]

log = logging.getLogger(__name__)


@torch.no_grad()
def importance_sampled_nll(
    model: AutoencoderModule,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    n_samples: int,
    generator: torch.Generator | None = None,
    max_decoded: int = 2_000,
) -> torch.Tensor:
    """-log p(x) per image, estimated with ``n_samples`` draws from q(z | input). The draws are
    decoded in chunks of at most ``max_decoded`` images (at least one draw per image), and their
    weights reduced as they come (log-sum-exp in float64), so memory does not grow with
    ``n_samples``. The weights log p(x, z) - log q(z | x) are the model's
    (``log_importance_weights``, its objective's: a VampPrior's log p(z) is its mixture's);
    the decoder's matrix products are nearly all of their cost."""
    mu, logvar = model.posterior(inputs)
    chunk = max(1, max_decoded // len(mu))
    total = torch.full((len(mu),), -math.inf, device=mu.device, dtype=torch.float64)
    for start in range(0, n_samples, chunk):
        k = min(chunk, n_samples - start)
        log_w = model.log_importance_weights(mu, logvar, targets, k, generator)
        total = torch.logaddexp(total, torch.logsumexp(log_w.double(), 0))
    return -(total - math.log(n_samples)).to(mu.dtype)


class ImportanceSampledNLL(Evaluation):
    """Logs ``test/nll`` (nats per image) for VAEs, from ``n_samples`` (K) importance samples per
    test image, drawn with a generator seeded per batch so the estimate is reproducible, and
    ``test/nll_k``: that K, so every figure can say which K it used. The mean over images is a
    torchmetrics ``MeanMetric`` (in float64; under DDP over every process's images), which keeps a
    NaN: a diverged model has no likelihood to report.

    Only binary targets have a likelihood to estimate (``data.binarize_target``): on grey targets
    (``transform=binarize`` binarizes only the encoder's input) a Bernoulli "likelihood" has a
    floor far above 0 and compares with nothing, so a run with a grey first test batch logs one
    line saying so and no ``test/nll``. The cost grows linearly with K (docs/evaluation.md)."""

    def __init__(
        self,
        n_samples: Annotated[int, Ge(1)] = 1000,
        seed: Annotated[int, Ge(0)] = 0,
        max_decoded: Annotated[int, Ge(1)] = 2_000,
    ) -> None:
        self.n_samples = n_samples
        self.seed = seed
        self.max_decoded = max_decoded
        self.mean: MeanMetric | None = None
        self.binary: bool | None = None

    def evaluates(self, model: L.LightningModule) -> bool:
        return isinstance(model, AutoencoderModule)

    def start(self, ctx: EvalContext) -> None:
        self.mean, self.binary = None, None

    def update(self, ctx: EvalContext, record: BatchRecord) -> None:
        if self.binary is False:
            return
        if not is_variational(ctx.model):
            why = ctx.model.objective.no_likelihood
            if why is not None and self.binary is None:
                skip("test/nll", why)
                self.binary = False
            return
        if self.binary is None:
            self.binary = is_binary(record.target)
            if not self.binary:
                skip("test/nll", GREY_TARGETS)
                return
        gen = torch.Generator(device=ctx.device)
        gen.manual_seed(self.seed * 1_000_003 + record.index)
        nll = importance_sampled_nll(
            ctx.model, record.input, record.target, self.n_samples, gen, self.max_decoded
        )
        if self.mean is None:
            self.mean = MeanMetric(nan_strategy="disable").set_dtype(torch.float64)
            self.mean.to(nll.device)
        self.mean.update(nll)

    def finish(self, ctx: EvalContext) -> None:
        if self.mean is not None:
            nll = self.mean.compute()
            if not nll.isfinite():
                log.warning(
                    "test/nll is %s: some test images' importance weights are not finite (the "
                    "decoder's logits or the encoder's variances overflow, as with weights that "
                    "large)",
                    float(nll),
                )
            ctx.log("test/nll", nll.float())
            ctx.log("test/nll_k", float(self.n_samples))
            self.mean = None
