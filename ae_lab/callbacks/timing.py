"""Training speed per epoch, so runs on different models and machines can be compared."""

from __future__ import annotations

import time

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn


class EpochTimer(L.Callback):
    """Logs ``time/epoch_s`` (wall time of the epoch, validation included) and
    ``time/samples_per_s`` (training images per second of the training part alone) every epoch;
    under DDP the slowest process's epoch and all processes' images per second together.

    On a GPU the clock is read after a synchronize, so queued kernels are counted in their epoch.
    """

    def __init__(self) -> None:
        self.start = 0.0
        self.train_end: float | None = None
        self.samples = 0

    @staticmethod
    def _now(pl_module: L.LightningModule) -> float:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        return time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start, self.train_end, self.samples = self._now(pl_module), None, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.samples += len(batch["target"]) if isinstance(batch, dict) else len(batch[0])

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        fitting = trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking
        if fitting and self.train_end is None and self.samples:
            self.train_end = self._now(pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        end = self._now(pl_module)
        train_s = (self.train_end or end) - self.start
        # with several processes (DDP) the epoch lasts as long as its slowest process, and the
        # run's throughput is every process's share added up
        pl_module.log("time/epoch_s", end - self.start, sync_dist=True, reduce_fx="max")
        if train_s > 0:
            rate = self.samples / train_s
            pl_module.log("time/samples_per_s", rate, sync_dist=True, reduce_fx="sum")
