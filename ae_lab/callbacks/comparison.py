"""TensorBoard's CUSTOM SCALARS tab: each metric of the model on one chart with PCA's.

TensorBoard's Time Series and Scalars tabs draw one tag per chart and group charts by the tag's
first part, so ``val/mse`` and ``pca/val_mse`` sit in two groups, on two charts with two scales.
Its custom_scalars plugin draws several tags on one chart, from a layout found in a run's event
file. ``ComparisonLayout`` writes that layout for a run that logs to TensorBoard (other loggers
have no such thing and are left alone): one chart per model metric that has a PCA counterpart
(``ae_lab.reporting.metrics.pca_counterparts``), then the model's own objective, all derived from
the metrics the run has logged.

PCA is fitted once, so its validation MSE is the same at every epoch: a flat line beside the
model's learning curve, which shows the epoch at which the model passes PCA, if it does. Test
metrics are one point per run, at the run's last step; across a sweep's runs (TensorBoard merges
their layouts, which name the same charts) they are one point per job on one chart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger

from ae_lab.callbacks.common import writes_files
from ae_lab.reporting import metrics

CATEGORY = "model vs PCA"
# the model's objective at each stage (ae_lab.models.base logs <stage>/loss)
LOSS = "loss"

# {category: {chart title: ["Multiline", [tag regex, ...]]}}: SummaryWriter.add_custom_scalars'
Layout = dict[str, dict[str, list[Any]]]


def _exactly(tag: str) -> str:
    return f"^{re.escape(tag)}$"


def _every_stage(metric: str, pca: bool = False) -> str:
    """A tag regex for ``metric`` at every stage: ``val/mse``, ``test/mse`` (and ``train/mse``,
    logged or not yet), or PCA's ``pca/val_mse``, ``pca/test_mse``. A chart then stays the same
    chart from the first validation to the test, and the runs of a sweep that is still running
    (some tested, some training) show one chart, not two that TensorBoard would not merge."""
    if pca:
        return f"^{re.escape(metrics.PCA_PREFIX)}[^/_]+_{re.escape(metric)}$"
    return f"^(?!{re.escape(metrics.PCA_PREFIX)})[^/]+/{re.escape(metric)}$"


def comparison_layout(names: Iterable[str]) -> Layout:
    """The charts for a run that has logged ``names``: for each metric with a PCA counterpart,
    the model's and PCA's values at every stage on one chart (``mse``: ``val/mse`` and
    ``pca/val_mse`` per epoch, ``test/mse`` and ``pca/test_mse`` at the end), then the model's
    loss at every stage. Empty when the run has nothing to compare (no PCA baseline).

    Left out: metrics one level further down (``test/mse_digit/<k>``: ten charts of one point
    each; the run logs them as a table, in train.log), and ``test/mse_ratio``, one point per
    run, which HPARAMS shows beside each run's settings."""
    charts: dict[str, list[Any]] = {}
    for model, pca in metrics.pca_counterparts(names).items():
        metric = model.partition("/")[2]
        if "/" in metric:
            continue
        if pca.startswith(metrics.PCA_PREFIX):
            tags = [_every_stage(metric), _every_stage(metric, pca=True)]
        else:  # downstream/acc_recon and downstream/acc_pca
            tags = [_exactly(model), _exactly(pca)]
        charts.setdefault(f"{metric}: model and PCA", ["Multiline", tags])
    if not charts:
        return {}
    charts[f"{LOSS}: the model's objective"] = ["Multiline", [_every_stage(LOSS)]]
    return {CATEGORY: charts}


class ComparisonLayout(L.Callback):
    """Writes ``comparison_layout`` into the run's TensorBoard event files after the first
    validation, so that a sweep running overnight can be watched, and again after the test if it
    logged metrics that add a chart (``downstream/acc_recon``). TensorBoard shows the latest
    layout of each run. A run without a TensorBoard logger is left as it is."""

    def __init__(self) -> None:
        self.names: dict[str, None] = {}  # every metric logged so far, in order
        self.written: Layout = {}

    def _update(self, trainer: L.Trainer) -> None:
        if trainer.sanity_checking or not writes_files(trainer):
            return
        self.names.update(dict.fromkeys(trainer.logged_metrics))
        layout = comparison_layout(self.names)
        if not layout or layout == self.written:
            return
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_custom_scalars(layout)
        self.written = layout

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._update(trainer)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._update(trainer)
