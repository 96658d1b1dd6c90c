"""Callbacks that entrypoint tests add with ``+callbacks.<name>._target_=tests.probes.<Class>``
to see what a run looks like from inside its Trainer."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import lightning as L


class CallbackProbe(L.Callback):
    """Writes ``callbacks_seen.json`` to the run dir: the trainer's callbacks, by class name and in
    order, while it trains and while it tests."""

    def __init__(self) -> None:
        self.seen: dict[str, list[str]] = {}

    def _record(self, trainer: L.Trainer, stage: str) -> None:
        self.seen[stage] = [type(c).__name__ for c in trainer.callbacks]

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._record(trainer, "fit")

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._record(trainer, "test")
        Path(trainer.default_root_dir, "callbacks_seen.json").write_text(json.dumps(self.seen))


class HoldForPreemption(L.Callback):
    """In the first run of a SLURM job (no ``SLURM_RESTART_COUNT``), waits at the start of epoch
    ``epoch`` for a signal, so that a test can signal the job at a known point: after the
    previous epoch's ``last.ckpt``, before this epoch's. ``held`` in the run dir says it waits.
    Outside SLURM, and once the job is requeued, it does nothing."""

    def __init__(self, epoch: int = 1, timeout_s: float = 300.0) -> None:
        self.epoch = epoch
        self.timeout_s = timeout_s

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        first_run = "SLURM_JOB_ID" in os.environ and "SLURM_RESTART_COUNT" not in os.environ
        if trainer.current_epoch != self.epoch or not first_run:
            return
        Path(trainer.default_root_dir, "held").touch()
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:  # a signal's handler runs between these sleeps
            time.sleep(0.05)
        raise RuntimeError(f"no signal came within {self.timeout_s} s")
