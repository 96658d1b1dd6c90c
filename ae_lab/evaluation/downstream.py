"""Downstream classification: does a reconstruction keep what makes an image its class?

A CNN trained on the run's dataset's clean images (``ae_lab.evaluation.classifier``) classifies
the original test images, the model's reconstructions and PCA's at the same bottleneck size. The
reference study measured 98.89% / 98.27% / 98.22% on MNIST.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import lightning as L
import torch
from annotated_types import Ge, Gt

from ae_lab.evaluation import classifier as clf
from ae_lab.evaluation.accuracy import FiniteAccuracy
from ae_lab.evaluation.base import CLASSIFIER, Evaluation
from ae_lab.evaluation.classifier_source import ClassifierSource
from ae_lab.evaluation.context import EvalContext, Shared
from ae_lab.evaluation.record import BatchRecord
from ae_lab.models.base import AutoencoderModule, SchedulerFactory
from ae_lab.models.classifier import CNNClassifier

log = logging.getLogger(__name__)


class DownstreamClassification(Evaluation):
    """Logs ``downstream/acc_original``, ``downstream/acc_recon`` and ``downstream/acc_pca``:
    the accuracy of a fixed classifier on the clean test images, on the model's reconstructions
    (of the corrupted inputs, if a ``transform`` is set) and on PCA's, over the same test batches
    (the batch records' ``clean``, ``recon`` and ``pca_recon``); the accuracies are
    ``FiniteAccuracy`` metrics, reduced across DDP processes by torchmetrics.

    Its settings say where the run's classifier comes from (``ClassifierSource``: ``checkpoint``,
    else one trained once with ``seed`` for ``epochs`` epochs and cached in ``cache_dir``); the
    suite builds it once and shares it with every evaluation that needs it.

    Reconstructions that are not finite have no accuracy: their ``downstream/acc_*`` is NaN,
    with one warning, rather than whatever class a NaN image happens to score as.

    ``accuracies=False`` only provides the classifier to the evaluations that use it (the VAEs'
    sample quality), and only to the models they evaluate, so a report can score its VAEs'
    samples without paying for three classifier passes per job.
    """

    def __init__(
        self,
        checkpoint: str | None = None,
        cache_dir: str | None = None,
        epochs: Annotated[int, Ge(1)] = 3,
        seed: Annotated[int, Ge(0)] = 0,
        batch_size: Annotated[int, Ge(1)] = 128,
        lr: Annotated[float, Gt(0)] = 1e-3,
        scheduler: SchedulerFactory | None = None,
        accuracies: bool = True,
    ) -> None:
        # the ``scheduler`` group's none is an empty node
        self.source = ClassifierSource(
            checkpoint, cache_dir, epochs, seed, batch_size, lr, scheduler or None
        )
        self.accuracies = accuracies
        self.classifier: CNNClassifier | None = None
        self.accuracy: dict[str, FiniteAccuracy] = {}
        if checkpoint:  # before training, not after it, when the test would load it
            clf.check_checkpoint(Path(checkpoint).expanduser())

    # the settings, as they were when the classifier was this evaluation's own
    checkpoint = property(lambda self: self.source.checkpoint)
    cache_dir = property(lambda self: self.source.cache_dir)
    epochs = property(lambda self: self.source.epochs)

    def cache_path(self, datamodule: Any) -> Path:
        return self.source.cache_path(datamodule)

    def load_classifier(self, datamodule: Any, device: torch.device) -> CNNClassifier:
        return self.source.load(datamodule, device)

    check_checkpoint = staticmethod(clf.check_checkpoint)
    _load = staticmethod(clf.load_classifier)

    def evaluates(self, model: L.LightningModule) -> bool:
        return self.accuracies and isinstance(model, AutoencoderModule)

    def needs(self, model: L.LightningModule) -> frozenset[str]:
        return frozenset({CLASSIFIER})

    def provides(self) -> dict[str, Any]:
        return {CLASSIFIER: self.source}

    def attach(self, shared: Shared) -> None:
        self.classifier = shared.classifier

    def start(self, ctx: EvalContext) -> None:
        self.accuracy = {}

    @torch.no_grad()
    def _count(self, name: str, images: torch.Tensor, labels: torch.Tensor) -> None:
        assert self.classifier is not None
        metric = self.accuracy.get(name)
        if metric is None:
            n_classes = int(self.classifier.hparams.get("n_classes", 10))
            metric = self.accuracy[name] = FiniteAccuracy(n_classes).to(labels.device)
        metric.update(clf.classify(self.classifier, images), labels)

    def update(self, ctx: EvalContext, record: BatchRecord) -> None:
        if self.classifier is None:
            return
        self._count("acc_original", record.clean, record.label)
        self._count("acc_recon", record.recon, record.label)
        if (
            record.pca_recon is not None
        ):  # PCA's pixels can leave [0, 1]; the model's are a sigmoid's
            self._count("acc_pca", record.pca_recon.clamp(0.0, 1.0), record.label)

    def finish(self, ctx: EvalContext) -> None:
        for name, metric in self.accuracy.items():
            value = metric.compute()  # every process's share (DDP)
            if value.isnan():
                log.warning("downstream/%s is NaN: some of its images are not finite", name)
            ctx.log(f"downstream/{name}", value.float())
        self.accuracy = {}
