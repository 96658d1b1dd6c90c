"""What the evaluations share: how one that cannot run says so, and how the costly ones scale
with the share of the test set a run tests."""

from __future__ import annotations

import logging
import math

import lightning as L
import torch

log = logging.getLogger(__name__)


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
