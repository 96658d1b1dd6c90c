"""The one Lightning callback the evaluations run in: it builds what they share, and one record a
batch for all of them.

``python -m ae_lab`` gathers the evaluations of the ``callbacks`` group (``gather``) into one
``EvaluationSuite``. The suite builds the shared things once per run from what the evaluations
provide (the PCA from ``callbacks.pca``, the downstream classifier from ``callbacks.downstream``)
and only where an evaluation of this model uses them; hands them to every evaluation
(``Evaluation.attach``); and for every validation and test batch builds ONE ``BatchRecord``
(``record.build_record``), which every evaluation of that stage reads. The order the evaluations
are listed in does not matter: none reads what another computed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import lightning as L

from ae_lab.callbacks.common import TestStageCallback
from ae_lab.evaluation.base import CLASSIFIER, PCA, Evaluation
from ae_lab.evaluation.context import EvalContext, Shared
from ae_lab.evaluation.record import build_record


class EvaluationSuite(L.Callback):
    """Runs ``evaluations`` (by their ``conf/callbacks`` names, or a list) at validation and test.

    ``records``: how many records each stage built: one per batch, at a stage where an
    evaluation of this model acts (none otherwise: nothing reads them).
    """

    def __init__(self, evaluations: Mapping[str, Evaluation] | Sequence[Evaluation]) -> None:
        if not isinstance(evaluations, Mapping):
            evaluations = {f"{type(e).__name__}_{i}": e for i, e in enumerate(evaluations)}
        self.evaluations: dict[str, Evaluation] = dict(evaluations)
        self.providers: dict[str, Any] = {}
        for evaluation in self.evaluations.values():
            self.providers.update(evaluation.provides())
        self.shared = Shared()
        self.records: Counter[str] = Counter()
        self.contexts: dict[str, EvalContext] = {}
        self.active: dict[str, list[Evaluation]] = {}

    @property
    def validates(self) -> bool:
        """Whether any evaluation takes part in validation (then training needs the suite)."""
        return any("val" in e.stages for e in self.evaluations.values())

    # --- what is shared, built once per run ---
    def _needs(self, model: L.LightningModule) -> set[str]:
        wanted = set()
        for evaluation in self.evaluations.values():
            if evaluation.evaluates(model):
                wanted |= evaluation.needs(model)
        return wanted

    def _attach(self) -> None:
        for evaluation in self.evaluations.values():
            evaluation.attach(self.shared)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # here, not in a test hook: training a classifier needs gradients, which tests switch off
        shared = self.shared
        if stage != "test" or shared.classifier is not None or shared.no_classifier is not None:
            return
        if CLASSIFIER not in self._needs(pl_module):
            return
        source = self.providers.get(CLASSIFIER)
        if source is None:
            shared.no_classifier = "it needs the downstream classifier (callbacks.downstream)"
        else:  # the source says why it has none, once
            shared.classifier, shared.no_classifier = source.build(trainer)
            shared.no_classifier_said = shared.no_classifier is not None
        self._attach()

    def _fit_pca(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        settings = self.providers.get(PCA)
        if self.shared.pca is not None or settings is None:
            return
        if any(e.evaluates(pl_module) for e in self.evaluations.values() if PCA in e.provides()):
            self.shared.pca = settings.build(trainer, pl_module)
            self._attach()

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._fit_pca(trainer, pl_module)

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._fit_pca(trainer, pl_module)
        if self.shared.classifier is not None:
            self.shared.classifier.to(pl_module.device)

    # --- one record a batch, for every evaluation of the stage ---
    def _start(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        ctx = self.contexts[stage] = EvalContext(trainer, pl_module, stage, self.shared)
        self.active[stage] = [
            e for e in self.evaluations.values() if stage in e.stages and e.evaluates(pl_module)
        ]
        for evaluation in self.active[stage]:
            evaluation.start(ctx)

    def _batch(self, stage: str, outputs: Any, batch: Any, batch_idx: int) -> None:
        if not self.active.get(stage):
            return
        pca = self.shared.pca.reconstruct if self.shared.pca is not None else None
        record = build_record(stage, batch_idx, batch, outputs, pca)
        self.records[stage] += 1
        ctx = self.contexts[stage]
        for evaluation in self.active[stage]:
            evaluation.update(ctx, record)

    def _finish(self, stage: str) -> None:
        ctx = self.contexts.get(stage)
        for evaluation in self.active.pop(stage, []):
            evaluation.finish(ctx)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start("val", trainer, pl_module)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dl_idx=0):
        self._batch("val", outputs, batch, batch_idx)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._finish("val")

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start("test", trainer, pl_module)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dl_idx=0):
        self._batch("test", outputs, batch, batch_idx)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._finish("test")


class TestStageSuite(EvaluationSuite, TestStageCallback):
    """A suite with nothing to do at validation, joined for the test only."""


def gather(callbacks: Mapping[str, Any] | Iterable[Any]) -> list[Any]:
    """``callbacks`` (by their ``conf/callbacks`` keys, or a list) with its evaluations replaced
    by one suite, where the first of them stood: a ``TestStageSuite`` when none validates."""
    if not isinstance(callbacks, Mapping):
        callbacks = {str(i): c for i, c in enumerate(callbacks)}
    evaluations = {k: c for k, c in callbacks.items() if isinstance(c, Evaluation)}
    listed = list(callbacks.values())
    if not evaluations:
        return listed
    suite = EvaluationSuite(evaluations)
    if not suite.validates:
        suite = TestStageSuite(evaluations)
    first = next(i for i, c in enumerate(listed) if isinstance(c, Evaluation))
    rest = [c for c in listed if not isinstance(c, Evaluation)]
    return [*rest[:first], suite, *rest[first:]]
