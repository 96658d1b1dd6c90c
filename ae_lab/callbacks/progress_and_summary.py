"""The progress bar and the model summary a run shows on the console.

Lightning's bar redraws every ``refresh_rate`` steps, so one rate cannot suit both a dense model
at thousands of steps a second and a convolutional VAE at one or two: the first pays for
redraws it does not need, the second looks frozen. ``ProgressBar`` redraws by time instead, at
most once every ``interval_s`` seconds and at the end of each bar (sanity checking included),
at the cost of one clock read per step. A sweep job shows it on a terminal only: in a pipe or a
SLURM log each redraw would be a line (``ae_lab.sweeps.console`` keeps a job to a few).

Lightning's model summary lists every child module, the metric objects (``val_mse``) among them,
and a FLOPs column and total that are 0 unless the model defines an example input.
``ModelSummary`` leaves out both.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TYPE_CHECKING, Annotated

from annotated_types import Ge, Gt, doc
from lightning.pytorch.callbacks import ModelSummary as LightningModelSummary
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.utilities.model_summary.model_summary import _format_summary_table
from torchmetrics import Metric

from ae_lab.core import records

if TYPE_CHECKING:
    import lightning as L

log = logging.getLogger(__name__)


class ProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar, redrawn by time (``interval_s``) rather than every n steps."""

    def __init__(
        self, interval_s: Annotated[float, Gt(0), doc("seconds")] = 1.0, leave: bool = False
    ) -> None:
        super().__init__(refresh_rate=1, leave=leave)
        self.interval_s = interval_s
        self._due = 0.0  # time.monotonic() from which the next redraw is due
        self._shown_step = -1  # the last training batch index the bar was redrawn at
        if records.in_sweep() and not sys.stdout.isatty():  # a sweep's log keeps a few lines a job
            self.disable()

    def _should_update(self, current: int, total: int | float | None) -> bool:
        if not self.is_enabled:
            return False
        now = time.monotonic()
        if now < self._due and current != total:
            return False
        self._due = now + self.interval_s
        return True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        due = self._due
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self._due != due:
            self._shown_step = batch_idx

    def shows_step(self, batch_idx: int) -> bool:
        """Whether the bar was redrawn at this training batch: the model logs its running loss
        for the bar then only (``ae_lab.models.base``), as a log call per step costs more than a
        small model's step."""
        return batch_idx == self._shown_step


class ModelSummary(LightningModelSummary):
    """Lightning's summary table without metric objects, and without FLOPs where none were
    counted."""

    def __init__(self, max_depth: Annotated[int, Ge(-1), doc("0: none, -1: all")] = 1) -> None:
        super().__init__(max_depth=max_depth)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._max_depth:
            return
        summary = self._summary(trainer, pl_module)
        if not trainer.is_global_zero:
            return
        metrics = {name for name, m in pl_module.named_modules() if isinstance(m, Metric)}
        data = summary._get_summary_data()
        keep = [i for i, name in enumerate(dict(data)["Name"]) if name not in metrics]
        flops = getattr(summary, "total_flops", 0)
        columns = [(" ", [str(n) for n in range(len(keep))])] + [
            (head, [values[i] for i in keep])
            for head, values in data[1:]
            if head != "FLOPs" or flops
        ]
        table = _format_summary_table(
            summary.total_parameters,
            summary.trainable_parameters,
            summary.model_size,
            summary.total_training_modes,
            flops,
            *columns,
        )
        if not flops:  # its last line is the FLOPs total
            table = table.rsplit("\n", 1)[0]
        log.info("\n%s", table)
