"""``make bench``'s callback inside each benchmarked ``python -m ae_lab`` run (kept apart from
``bench.py`` so that the benchmark itself does not import Lightning before it starts the runs)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import lightning as L
import torch


class EpochTimer(L.Callback):
    """Added to benchmarked runs (``+callbacks.bench_timer._target_=bench_timer.EpochTimer``):
    records the launch-to-first-step start-up and, per epoch, the training pass (validation
    excluded) as ae_lab's own ``EpochTimer`` measured it. It has no per-step hook; its one cost per
    step is Lightning dispatching each hook to one more callback (a few us), counted against
    ae_lab."""

    def __init__(self) -> None:
        self.launched = float(os.environ.get("BENCH_T0", time.time()))
        self.first_step: float | None = None
        self.epochs: list[tuple[float, float, int]] = []
        self.cpu: tuple[float, float | None] = (0.0, None)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.first_step is None:
            self.first_step = time.time() - self.launched
        self.cpu = (time.process_time(), None)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        fitting = trainer.state.fn == "fit" and not trainer.sanity_checking
        if fitting and self.cpu[1] is None:
            self.cpu = (self.cpu[0], time.process_time())

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from ae_lab.callbacks import EpochTimer as LabTimer
        from ae_lab.callbacks.common import find_callback

        timer = find_callback(trainer, LabTimer)  # its hook ran just before this one
        end = timer.train_end or time.perf_counter()
        cpu_end = self.cpu[1] or time.process_time()
        self.epochs.append((end - timer.start, cpu_end - self.cpu[0], timer.samples))

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pca = next((c for c in trainer.callbacks if hasattr(c, "fit_seconds")), None)
        result = {
            "epoch_s": [t for t, _, _ in self.epochs],
            "cpu_s": [c for _, c, _ in self.epochs],
            "samples": [n for _, _, n in self.epochs],
            "startup_s": self.first_step,
            "pca_fit_s": getattr(pca, "fit_seconds", None),
            "threads": torch.get_num_threads(),
            "device": str(pl_module.device),
        }
        Path(os.environ["BENCH_OUT"]).write_text(json.dumps(result))
