"""Callbacks that entrypoint tests add with ``+callbacks.<name>._target_=tests.probes.<Class>``
to see what a run looks like from inside its Trainer, or to make a job stall or fail on cue."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import lightning as L

from ae_lab.core.errors import AeLabError


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


class StallAfterFirstJob(L.Callback):
    """With ``$AE_LAB_PROBE_STALL`` naming a file: the first job to finish its test pass creates
    the file, and a job that starts training while it exists creates ``<file>.stalled`` and waits
    there until it is killed. Without the variable it does nothing, so a run again with the same
    overrides goes through."""

    def _marker(self) -> Path | None:
        path = os.environ.get("AE_LAB_PROBE_STALL")
        return Path(path) if path else None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        marker = self._marker()
        if marker is not None and marker.exists():
            marker.with_suffix(".stalled").touch()
            time.sleep(600)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        marker = self._marker()
        if marker is not None:
            marker.touch()


class FailFirstJob(L.Callback):
    """With ``$AE_LAB_PROBE_FAIL`` naming a file that does not exist yet: the first job to start
    training creates it and fails; the others run as usual."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        path = os.environ.get("AE_LAB_PROBE_FAIL")
        if path and not Path(path).exists():
            Path(path).touch()
            raise AeLabError("probe: this job fails")


class StallInTraining(L.Callback):
    """Writes its process id to ``<run dir>/job.pid`` at the first training batch, then waits
    there until the job is told to stop (SIGTERM, which Lightning turns into a stop at the next
    batch) or is killed."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        Path(trainer.default_root_dir, "job.pid").write_text(str(os.getpid()))
        deadline = time.monotonic() + 300
        while not trainer.received_sigterm and time.monotonic() < deadline:
            time.sleep(0.05)


class HoldAt(L.Callback):
    """With ``$AE_LAB_PROBE_HOLD`` naming a file: at the end of the fit (every epoch and its
    ``last.ckpt`` written, the fit not yet recorded) creates the file and waits there to be
    killed. Without the variable it does nothing, so the run continued with the same overrides
    goes through."""

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        path = os.environ.get("AE_LAB_PROBE_HOLD")
        if path:
            Path(path).touch()
            time.sleep(600)
