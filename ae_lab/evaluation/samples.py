"""Sample quality of generative models: do prior samples read as digits, and as every digit?

The run's downstream classifier (trained once per dataset on clean images) looks at decoded prior
samples and at test images: the Frechet distance between its penultimate-layer features of the
two sets (the FID recipe with a digit classifier in place of Inception), the share of samples it
classifies confidently, and the entropy of the classes it gives them (coverage).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Annotated

import lightning as L
import torch
from annotated_types import Ge, Gt, Le
from torch import nn
from torchmetrics import Metric
from torchmetrics.image.fid import FrechetInceptionDistance

from ae_lab.evaluation.base import CLASSIFIER, Evaluation
from ae_lab.evaluation.common import skip, test_set_size
from ae_lab.evaluation.context import EvalContext
from ae_lab.evaluation.generation import prior_samples
from ae_lab.evaluation.record import BatchRecord
from ae_lab.models.classifier import CNNClassifier
from ae_lab.models.vae import is_variational

log = logging.getLogger(__name__)

NAMES = ("samples/fd", "samples/confident", "samples/class_entropy")
# the scale of samples/fd: the distance between two disjoint halves of the test images
FLOOR = "samples/fd_floor"


class GivenFeatures(nn.Identity):
    """Stands in for FID's feature network: the features are computed before ``update``."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features


def frechet_distance(num_features: int) -> FrechetInceptionDistance:
    """torchmetrics' Frechet distance (means and covariances accumulated in float64, summed over
    DDP processes) of features given to ``update(features, real)``; no Inception network and no
    torch-fidelity."""
    return FrechetInceptionDistance(feature=GivenFeatures(num_features))


def histogram_entropy(counts: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of the distribution ``counts / counts.sum()`` (0 log 0 = 0): log(k) when
    k classes are equally frequent."""
    p = counts.double() / counts.sum()
    return -(p * p.log()).nan_to_num().sum()


class PredictedClasses(Metric):
    """Of a set of images' class logits: the share whose highest softmax probability is at least
    ``confidence``, and the entropy (nats) of the histogram of their predicted classes. Both are
    NaN when any logits are not finite (an image a diverged decoder made has no class)."""

    def __init__(self, n_classes: int, confidence: float = 0.9) -> None:
        super().__init__()
        self.confidence = confidence
        self.add_state("counts", torch.zeros(n_classes, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("confident", torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("nonfinite", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor) -> None:
        finite = torch.isfinite(logits).all(1)
        self.nonfinite += (~finite).sum()
        logits = logits[finite]
        self.counts += torch.bincount(logits.argmax(1), minlength=len(self.counts))
        self.confident += (logits.softmax(1).amax(1) >= self.confidence).sum()

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.nonfinite > 0 or self.counts.sum() == 0:
            nan = torch.tensor(math.nan, dtype=torch.float64)
            return nan, nan
        return self.confident.double() / self.counts.sum(), histogram_entropy(self.counts)


@torch.no_grad()
def features_and_logits(
    classifier: CNNClassifier, images: torch.Tensor, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The classifier's penultimate features and class logits of ``images``, in batches."""
    feats = [
        classifier.features(images[i : i + batch_size].float())
        for i in range(0, len(images), batch_size)
    ]
    features = torch.cat(feats)
    return features, classifier.head(features)


class SampleQuality(Evaluation):
    """Logs, for every VAE (any model with a prior to sample): ``samples/fd``, the Frechet
    distance between the downstream classifier's penultimate-layer features (128 values) of
    ``n_samples`` decoded prior samples and of as many clean test images (the first ones);
    ``samples/confident``, the share of samples whose top softmax probability is at least
    ``confidence``; ``samples/class_entropy``, the entropy in nats of the samples' predicted
    classes (log 10 = 2.303 when all ten digits are equally common; 0 when all are one digit);
    ``samples/fd_floor``, the same Frechet distance between those test images and the next as
    many (two disjoint halves of the test set): what real digits score against real digits at
    this N, the floor ``samples/fd`` is read against. With fewer than twice ``n_samples`` test
    images there is one line saying so and no floor.

    The samples are decoded Bernoulli means from z ~ N(0, I) drawn with ``seed``, as in the
    ``generation`` grid (its images are the first of these). The classifier is the run's
    downstream classifier, which the suite builds from ``callbacks.downstream``'s settings:
    without that entry there is one line saying so and no metric. Samples that are not finite
    give NaN, with one warning. Under DDP each process scores an equal share of samples (its
    own seed) and of test images; the metrics' states are summed over processes.

    A run that tests part of the test split (``trainer.limit_test_batches``, e.g. ``debug=tiny``)
    scores as many samples as it tested images, when that is fewer than ``n_samples``: a smoke
    run's sample quality costs what its test costs; a full run's is unchanged.
    """

    def __init__(
        self,
        n_samples: Annotated[int, Ge(2)] = 2000,
        confidence: Annotated[float, Gt(0), Le(1)] = 0.9,
        batch_size: Annotated[int, Ge(1)] = 128,
        seed: Annotated[int, Ge(0)] = 0,
    ) -> None:
        self.n_samples = n_samples
        self.confidence = confidence
        self.batch_size = batch_size
        self.seed = seed
        self.tested = 0

    def evaluates(self, model: L.LightningModule) -> bool:
        return is_variational(model)

    def needs(self, model: L.LightningModule) -> frozenset[str]:
        return frozenset({CLASSIFIER})

    def start(self, ctx: EvalContext) -> None:
        self.tested = 0

    def update(self, ctx: EvalContext, record: BatchRecord) -> None:
        self.tested += len(record)

    def finish(self, ctx: EvalContext) -> None:
        trainer, pl_module = ctx.trainer, ctx.model
        classifier = ctx.shared.classifier
        if classifier is None:
            if not ctx.shared.no_classifier_said:  # else the suite has said why, once
                skip("sample quality", ctx.shared.no_classifier or "no downstream classifier")
            return
        start = time.perf_counter()
        classifier.eval().to(pl_module.device)
        rank, world = trainer.global_rank, trainer.world_size
        n = math.ceil(self.n_samples / world)
        total = test_set_size(trainer)
        if total is not None and trainer.world_size * self.tested < total:
            n = min(n, self.tested)  # part of the test split: as many as it tested (debug=tiny)
        if n < 2:
            skip("sample quality", f"{n} test image(s) tested; a Frechet distance needs 2")
            return
        test_images = trainer.datamodule.images("test")
        real = test_images[rank::world][:n].to(pl_module.device)
        fake = prior_samples(pl_module, n, self.seed + rank)
        real_features, _ = features_and_logits(classifier, real, self.batch_size)
        fake_features, fake_logits = features_and_logits(classifier, fake, self.batch_size)
        classes = PredictedClasses(fake_logits.shape[1], self.confidence).to(pl_module.device)
        classes.update(fake_logits)
        confident, entropy = classes.compute()  # every process's share (DDP)
        fd = torch.tensor(math.nan)
        if not confident.isnan():  # no sample on any process was NaN: all processes agree
            fid = frechet_distance(real_features.shape[1]).to(pl_module.device)
            fid.update(real_features, real=True)
            fid.update(fake_features, real=False)
            fd = fid.compute()
        else:
            log.warning("%s are NaN: some prior samples are not finite", ", ".join(NAMES))
        for name, value in zip(NAMES, (fd, confident, entropy), strict=True):
            ctx.log(name, value.float().to(pl_module.device))
        self.log_floor(pl_module, classifier, test_images, real_features, n * world)
        log.info("sample quality: %d prior samples in %.1f s", n, time.perf_counter() - start)

    def log_floor(
        self,
        pl_module: L.LightningModule,
        classifier: CNNClassifier,
        test_images: torch.Tensor,
        real_features: torch.Tensor,
        n_all: int,
    ) -> None:
        """``samples/fd_floor``: the Frechet distance between ``real_features`` (this process's
        share of the first ``n_all`` test images) and the features of the next ``n_all`` test
        images, through the same classifier and the same metric as ``samples/fd``."""
        if len(test_images) < 2 * n_all:  # the same answer on every process
            skip(
                FLOOR,
                f"it needs {2 * n_all} test images (two halves of {n_all}); there are "
                f"{len(test_images)}",
            )
            return
        rank, world = pl_module.trainer.global_rank, pl_module.trainer.world_size
        other = test_images[n_all:][rank::world][: len(real_features)].to(pl_module.device)
        other_features, _ = features_and_logits(classifier, other, self.batch_size)
        fid = frechet_distance(real_features.shape[1]).to(pl_module.device)
        fid.update(real_features, real=True)
        fid.update(other_features, real=False)
        pl_module.log(FLOOR, fid.compute().float().to(pl_module.device), sync_dist=True)
