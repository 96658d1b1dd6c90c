"""What the run's callbacks share: which process writes files, and which callbacks join for the
test only. Figures and hyperparameters reach the loggers through ``ae_lab.callbacks.loggers``;
the evaluations (``ae_lab.evaluation``) run in one suite built on these."""

from __future__ import annotations

import lightning as L


class TestStageCallback(L.Callback):
    """A callback with nothing to do until the model is tested (the evaluation suite when no
    evaluation validates).

    ``python -m ae_lab`` attaches these for ``trainer.test`` only: Lightning calls every hook of
    every attached callback on every training step, overridden or not (about 8 us per callback and
    step on a CPU), so a callback that only acts at test time is kept out of training.
    """


def writes_files(trainer: L.Trainer) -> bool:
    """Whether this process writes the run's files. Under DDP every process runs every callback;
    only the first (global rank 0) writes, so no two processes write one path. A callback checks
    this before work that only feeds a file, never before a reduce or a broadcast, which every
    process must join."""
    return trainer.is_global_zero
