"""What the evaluation callbacks share: which process writes files, how one callback finds another,
and how an evaluation that cannot run says so. Figures and hyperparameters reach the loggers
through ``ae_lab.callbacks.loggers``; what a test step computes reaches every callback as its
``outputs`` (``ae_lab.models.base.EvalOutputs``)."""

from __future__ import annotations

import logging
import math
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


def test_set_size(trainer: L.Trainer) -> int | None:
    """The images in the run's whole test split (every process's), None without such a split."""
    datamodule = getattr(trainer, "datamodule", None)
    try:
        return len(datamodule.labels("test"))
    except (AttributeError, KeyError):  # no datamodule, or one not set up
        return None


def in_proportion(n: int, tested: int, trainer: L.Trainer, floor: int = 1) -> int:
    """``n`` scaled by the share of the test split this run tests, when it tests only part of it
    (``trainer.limit_test_batches``, e.g. ``debug=tiny``); ``n`` itself for a run that tests it
    all. ``tested``: the test images this process saw; the share counts every process's. At
    least ``floor``, and never more than ``n``. So an evaluation sized for the 10k test set (the
    probe's training codes, sample quality's images) costs a smoke run what its test costs."""
    total = test_set_size(trainer)
    seen = tested * trainer.world_size
    if total is None or seen >= total:
        return n
    return min(n, max(floor, math.ceil(n * seen / total)))
