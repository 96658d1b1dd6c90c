"""Callbacks that time ``python -m ae_lab`` from inside: ``make bench``'s ``EpochTimer`` (kept apart
from ``bench.py`` so that the benchmark itself does not import Lightning before it starts the runs)
and the ``InterleavedPlainStep`` diagnostic."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import lightning as L
import torch
from bench_loops import default_recipe, plain_step

log = logging.getLogger(__name__)


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

        # its hook ran just before this one
        timer = next(c for c in trainer.callbacks if isinstance(c, LabTimer))
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


class InterleavedPlainStep(L.Callback):
    """A diagnostic, not part of ``make bench``: runs one plain PyTorch step (a twin DenseAE with
    ae_lab's default recipe, a random batch of the same size from the same resident images) right
    before each of the run's training steps, and at the end of the first epoch logs both steps'
    mean time and the difference: the framework's overhead per step.

    Load on a shared machine hits both sides of every pair, so the overhead is much steadier than
    ratios of whole runs; the twin's step costs the measured step some cache, so compare rows of
    this harness with each other, not with ``make bench``. Steps before ``skip`` are left out. CPU
    runs only (nothing is synchronised with a GPU). Add it with
    ``+callbacks.twin._target_=bench_timer.InterleavedPlainStep`` (with ``PYTHONPATH=scripts``).
    """

    def __init__(self, skip: int = 50) -> None:
        self.skip = skip
        self.plain_s = self.framework_s = 0.0
        self.pairs = 0
        self.last: float | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        from ae_lab.models import DenseAE

        datamodule = trainer.datamodule
        self.images = datamodule.splits["train"][0]  # (N, C, H, W)
        self.batch_size = datamodule.batch_size
        self.twin = DenseAE(latent_dim=32, hidden=[128]).to(self.images.device)
        self.opt, self.sched = default_recipe(self.twin, steps=10**7)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        counted = batch_idx > self.skip and trainer.current_epoch == 0
        if counted and self.last is not None:
            self.framework_s += time.perf_counter() - self.last
            self.pairs += 1
        start = time.perf_counter()
        idx = torch.randint(0, len(self.images), (self.batch_size,), device=self.images.device)
        x = self.images.index_select(0, idx) / 255.0
        plain_step(self.twin, self.opt, self.sched, x)
        if counted:
            self.plain_s += time.perf_counter() - start
        self.last = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch != 0 or not self.pairs:
            return
        plain, framework = self.plain_s / self.pairs * 1e6, self.framework_s / self.pairs * 1e6
        log.info(
            "interleaved over %d steps: plain step %.0f us, this run's step %.0f us, "
            "overhead %.0f us per step, ratio %.3fx",
            self.pairs,
            plain,
            framework,
            framework - plain,
            plain / framework,
        )
