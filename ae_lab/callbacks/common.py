"""What the evaluation callbacks share: where a run's figures go, how they reach TensorBoard, which
process writes them, and how an evaluation that cannot run says so."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch

log = logging.getLogger(__name__)


class TestStageCallback(L.Callback):
    """A callback with nothing to do until the model is tested (per-digit error, samples, maps).

    ``python -m ae_lab`` attaches these for ``trainer.test`` only: Lightning calls every hook of
    every attached callback on every training step, overridden or not (about 8 us per callback and
    step on a CPU), so a callback that only acts at test time is kept out of training.
    """


def find_callback(trainer: L.Trainer, kind: type) -> Any | None:
    """The first of the trainer's callbacks of type ``kind`` (e.g. the PCA baseline), or None."""
    return next((c for c in trainer.callbacks if isinstance(c, kind)), None)


def writes_files(trainer: L.Trainer) -> bool:
    """Whether this process writes the run's files. Under DDP every process runs every callback;
    only the first (global rank 0) writes, so no two processes write one path. A callback checks
    this before work that only feeds a file, never before a reduce or a broadcast, which every
    process must join."""
    return trainer.is_global_zero


def skip(what: str, reason: str) -> None:
    """One warning for an evaluation that cannot run on this model's outputs (a collapsed or
    diverged model), in place of an error or a native crash that would lose the whole run."""
    log.warning("%s skipped: %s", what, reason)


def all_finite(tensor: torch.Tensor) -> bool:
    return bool(torch.isfinite(tensor).all())


def figure_dir(trainer: L.Trainer, output_dir: str | None = None) -> Path:
    """``<run dir>/figures``: the run dir is the trainer's ``default_root_dir`` (Hydra's output
    dir in ae_lab runs), so figures sit beside the run's metrics and event files."""
    path = Path(output_dir or trainer.default_root_dir) / "figures"
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_figure(trainer: L.Trainer, tag: str, figure: Any) -> None:
    """Sends a matplotlib figure to every logger that takes figures (TensorBoard does)."""
    for lg in trainer.loggers:
        add_figure = getattr(getattr(lg, "experiment", None), "add_figure", None)
        if add_figure is not None:
            add_figure(tag, figure, global_step=trainer.global_step, close=False)


def log_image(trainer: L.Trainer, tag: str, image: torch.Tensor, step: int) -> None:
    """Sends a (C, H, W) image to every logger that takes images (TensorBoard does)."""
    for lg in trainer.loggers:
        add_image = getattr(getattr(lg, "experiment", None), "add_image", None)
        if add_image is not None:
            add_image(tag, image, global_step=step)
