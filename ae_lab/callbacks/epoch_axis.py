"""Epochs, not optimizer steps, on the x-axis of every per-epoch metric, in every logger.

Lightning logs an epoch's metrics at the global step (430 steps an epoch on MNIST), so a learning
curve of 10 points runs from 429 to 4299 and the x-axis reads in batches. It uses a logged metric
named ``step`` as the x-axis value of the metrics logged with it instead (and then adds no
``epoch`` scalar, whose only use was to translate steps into epochs): ``EpochAxis`` logs it at the
end of every training, validation and test epoch. A curve's points then sit at epochs 1, 2, ...
(the epochs completed when it was measured, as the results page and the reconstruction grids
count them), and a test at the number of epochs the model was trained for. Metrics logged per
step (the learning rate, ``LearningRateMonitor(logging_interval="step")``) stay on the step axis.
"""

from __future__ import annotations

import lightning as L
from lightning.pytorch.trainer.states import TrainerFn

# the metric Lightning takes as the x-axis value of the metrics logged with it
# (lightning.pytorch.trainer.connectors.logger_connector: log_metrics)
STEP = "step"


def completed_epochs(trainer: L.Trainer) -> int:
    """The epochs of training behind what is measured now: during a fit, the running epoch
    counts (its metrics are logged as it ends); after it, ``current_epoch`` has counted it."""
    running = 1 if trainer.state.fn == TrainerFn.FITTING else 0
    return trainer.current_epoch + running


class EpochAxis(L.Callback):
    """Logs ``step`` = ``completed_epochs`` with every epoch's metrics (see the module's doc)."""

    def _log(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.loggers:  # no logger: no x-axis to set
            return
        value = float(completed_epochs(trainer))
        # the same on every process: synced so that Lightning does not warn under DDP
        pl_module.log(STEP, value, on_step=False, on_epoch=True, sync_dist=True, logger=True)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log(trainer, pl_module)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log(trainer, pl_module)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log(trainer, pl_module)
