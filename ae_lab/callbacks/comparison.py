"""TensorBoard at a glance: each metric of the model on one chart with PCA's, each loss on a chart
of its own scale.

TensorBoard's Time Series and Scalars tabs draw one tag per chart and group charts by the tag's
first part, so ``val/mse`` and ``pca/val_mse`` sit in two groups, on two charts with two scales.
Its custom_scalars plugin draws several tags on one chart, from a layout found in a run's event
file, and colours each line by its run. ``ComparisonLayout`` does three things for a run that logs
to TensorBoard (other loggers have no such thing and are left alone):

- PCA gets a run of its own, ``<run>/pca``, holding PCA's value of every model metric under the
  model's name (``pca/val_mse`` as ``val/mse``), so TensorBoard draws a model and its PCA in two
  colours, on the Time Series charts as on the layout's, and names both in its run list;
- each loss is copied under a tag that names the model's objective (``loss_neg_elbo/val``), so
  that an autoencoder's MSE near 0.02 and a VAE's negative ELBO near 100 never share a linear
  axis: each objective has its charts, in Time Series and in the layout;
- the layout: one chart per model metric that has a PCA counterpart
  (``ae_lab.reporting.counterparts.pca_counterparts``), then one loss chart per objective, all
  derived from the metrics the run has logged.

PCA is fitted once, so its validation MSE is the same at every epoch: a flat line beside the
model's learning curve, which shows the epoch at which the model passes PCA, if it does. Test
metrics are one point per run, at the epochs it trained (``ae_lab.callbacks.epoch_axis``);
across a sweep's runs (TensorBoard merges their layouts, which name the same charts) they are one
point per job on one chart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.tensorboard import SummaryWriter

from ae_lab.callbacks.common import writes_files
from ae_lab.callbacks.epoch_axis import STEP
from ae_lab.reporting import counterparts

CATEGORY = "model vs PCA"
# the model's objective at each stage (ae_lab.models.base logs <stage>/loss)
LOSS = "loss"
# the run folder, inside the model's, that holds PCA's values under the model's metric names
PCA_RUN = "pca"
STAGES = ("train", "val", "test")

# {category: {chart title: ["Multiline", [tag regex, ...]]}}: SummaryWriter.add_custom_scalars'
Layout = dict[str, dict[str, list[Any]]]


def _exactly(tag: str) -> str:
    return f"^{re.escape(tag)}$"


def _every_stage(metric: str) -> str:
    """A tag regex for the model's ``metric`` at every stage: ``val/mse``, ``test/mse`` (and
    ``train/mse``, logged or not yet), in the run and in its PCA run. A chart then stays the same
    chart from the first validation to the test, and the runs of a sweep that is still running
    (some tested, some training) show one chart, not two that TensorBoard would not merge."""
    return f"^(?!{re.escape(counterparts.PCA_PREFIX)})[^/]+/{re.escape(metric)}$"


# what a class defines when its objective differs from its parent's (ae_lab.models.base)
OBJECTIVE_HOOKS = ("objective", "loss_terms", "shared_step")


def objective_name(model: Any) -> str:
    """The model's objective in a word (``mse``, ``neg_elbo``): the ``objective`` of the nearest
    class that defines its loss (``loss_terms`` or ``shared_step``) or names it; a class that
    defines its own loss without naming it is named by its class name; a model with none of
    these is named ``loss``. A model that names its objective itself (``objective_name``: the
    composed autoencoder's, from its objective) is named so."""
    named = getattr(model, "objective_name", None)
    if isinstance(named, str):
        return named
    owner = next((c for c in type(model).__mro__ if set(OBJECTIVE_HOOKS) & set(vars(c))), None)
    if owner is None:
        return LOSS
    return str(vars(owner).get("objective", owner.__name__))


def loss_tag(objective: str, stage: str) -> str:
    """Where a run's ``<stage>/loss`` is copied: a tag group of its objective's own."""
    return f"{LOSS}_{objective}/{stage}"


def stage_of(name: str) -> str:
    """``val`` for ``val/mse`` and ``pca/val_mse``; ``downstream`` for ``downstream/acc_pca``."""
    if name.startswith(counterparts.PCA_PREFIX):
        return name[len(counterparts.PCA_PREFIX) :].partition("_")[0]
    return name.partition("/")[0]


def comparison_layout(names: Iterable[str], objective: str | None = None) -> Layout:
    """The charts for a run that has logged ``names``: for each metric with a PCA counterpart,
    the model's values at every stage on one chart (``mse``: ``val/mse`` per epoch and
    ``test/mse`` at the end), which draws PCA's from the run's ``pca`` run, then the loss at
    every stage on a chart of the run's ``objective`` (``loss (neg_elbo)``), which only runs of
    that objective draw on. Empty when the run has nothing to compare (no PCA baseline).

    Left out: metrics one level further down (``test/mse_digit/<k>``: ten charts of one point
    each; the run logs them as a table, in train.log), and ``test/mse_ratio``, one point per
    run, which HPARAMS shows beside each run's settings."""
    charts: dict[str, list[Any]] = {}
    for model, pca in counterparts.pca_counterparts(names).items():
        metric = model.partition("/")[2]
        if "/" in metric:
            continue
        # downstream/acc_recon: one tag, PCA's run holding downstream/acc_pca under its name
        tags = [
            _every_stage(metric) if pca.startswith(counterparts.PCA_PREFIX) else _exactly(model)
        ]
        charts.setdefault(f"{metric}: model and PCA", ["Multiline", tags])
    if not charts:
        return {}
    if objective is not None:
        prefix = re.escape(loss_tag(objective, ""))
        charts[f"{LOSS} ({objective}): the model's objective"] = ["Multiline", [f"^{prefix}"]]
    return {CATEGORY: charts}


class ComparisonLayout(L.Callback):
    """Writes PCA's run and the objective's loss tags as the run's metrics are logged, and
    ``comparison_layout`` into the run's TensorBoard event files after the first validation, so
    that a sweep running overnight can be watched, and again after the test if it logged metrics
    that add a chart (``downstream/acc_recon``). TensorBoard shows the latest layout of each run.
    A run without a TensorBoard logger is left as it is."""

    def __init__(self) -> None:
        self.names: dict[str, None] = {}  # every metric logged so far, in order
        self.written: Layout = {}
        self.objective: str | None = None
        self.pca_writers: dict[str, SummaryWriter] = {}  # by the TensorBoard log dir they sit in

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.objective = objective_name(pl_module)

    def _loggers(self, trainer: L.Trainer) -> list[TensorBoardLogger]:
        if not writes_files(trainer):
            return []
        return [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]

    def _copy(self, trainer: L.Trainer, stages: Iterable[str] | None) -> None:
        """Copies what the run has just logged at ``stages`` (None: all but training and
        validation, i.e. the test's) to PCA's run and the objective's loss tags, at the step it
        was logged at (``ae_lab.callbacks.epoch_axis``)."""
        loggers = self._loggers(trainer)
        logged = {k: float(v) for k, v in trainer.logged_metrics.items()}
        if not loggers or not logged:
            return

        def now(name: str) -> bool:
            stage = stage_of(name)
            return stage in stages if stages is not None else stage not in STAGES[:2]

        step = int(logged.get(STEP, trainer.global_step))
        pairs = counterparts.pca_counterparts(logged)
        pca = {model: logged[p] for model, p in pairs.items() if now(model)}
        losses = {
            loss_tag(self.objective or LOSS, stage): logged[f"{stage}/{LOSS}"]
            for stage in STAGES
            if f"{stage}/{LOSS}" in logged and now(f"{stage}/{LOSS}")
        }
        for logger in loggers:
            for tag, value in losses.items():
                logger.experiment.add_scalar(tag, value, step)
            if pca:
                writer = self._pca_writer(logger)
                for tag, value in pca.items():
                    writer.add_scalar(tag, value, step)
                writer.flush()

    def _pca_writer(self, logger: TensorBoardLogger) -> SummaryWriter:
        key = str(logger.log_dir)
        if key not in self.pca_writers:
            self.pca_writers[key] = SummaryWriter(str(Path(logger.log_dir) / PCA_RUN))
        return self.pca_writers[key]

    def _update(self, trainer: L.Trainer) -> None:
        if trainer.sanity_checking or not writes_files(trainer):
            return
        self.names.update(dict.fromkeys(trainer.logged_metrics))
        layout = comparison_layout(self.names, self.objective)
        if not layout or layout == self.written:
            return
        for logger in self._loggers(trainer):
            logger.experiment.add_custom_scalars(layout)
        self.written = layout

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._copy(trainer, ["val"])
        self._update(trainer)

    # an epoch's train/* are logged after every on_train_epoch_end hook: they are copied when
    # the next epoch starts, or training ends
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._copy(trainer, ["train"])

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._copy(trainer, ["train"])

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._copy(trainer, None)
        self._update(trainer)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for writer in self.pca_writers.values():
            writer.close()
        self.pca_writers = {}
