"""The checkpoint that resume reads: written at every epoch's end, whole or not at all.

Resume (``ckpt_path=last``, a sweep job continuing by itself) needs ``checkpoints/last.ckpt`` in
the run directory, so the training code adds ``LastCheckpoint`` whatever the callbacks group
holds. Lightning's own ``save_last`` cannot stand in for it: it writes ``last.ckpt`` only in the
steps where a top-k checkpoint was saved too, so an epoch that does not improve the monitored
metric leaves ``last.ckpt`` an epoch (or many) behind, and a group without a ``ModelCheckpoint``
writes none at all.

Lightning writes a checkpoint to a temporary file in the system's temporary folder and moves it
into place: where that folder is on another file system (a node-local ``/tmp``, a run directory
on a network file system) the move is a copy, and a kill during it leaves a truncated
``last.ckpt``, plus the temporary file. ``AtomicCheckpointIO`` writes beside the target instead,
flushes the bytes to disk and renames the file over it, so a reader finds the old file or the
new one, never part of one.

Checkpoints are the files users pass around, so every one ae_lab reads (resume's, the one
``ae-lab-eval`` tests, the downstream evaluation's classifier) is read by ``load``, which runs no
code from the file (torch's ``weights_only``); ae_lab's own checkpoints hold only plain
containers, tensors and numbers, which it accepts.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.pytorch.callbacks import ModelCheckpoint

from ae_lab.core.errors import AeLabError, disk_full
from ae_lab.core.temporaries import remove_stale_temporaries

log = logging.getLogger(__name__)
DIRNAME = "checkpoints"


class LastCheckpoint(ModelCheckpoint):
    """``<run dir>/checkpoints/last.ckpt`` at the end of every epoch, replacing the one before.

    Lightning runs checkpoint callbacks after all others and in the order given, so with this one
    given last its file holds every other callback's state for the epoch, a best-model
    checkpoint's included. Its own class name keeps its state apart from any ``ModelCheckpoint``'s.
    """

    def __init__(self, run_dir: Path) -> None:
        super().__init__(
            dirpath=run_dir / DIRNAME,
            filename=self.CHECKPOINT_NAME_LAST,
            monitor=None,
            save_top_k=1,
            save_last=False,
            # at the very end of each epoch, after its validation; never mid-epoch, which exact
            # resume cannot continue from (ae_lab.run.resume.ExactResume)
            save_on_train_epoch_end=True,
            enable_version_counter=False,  # one file, the run directory's latest
        )
        self.file = run_dir / DIRNAME / f"{self.CHECKPOINT_NAME_LAST}{self.FILE_EXTENSION}"
        self.run_dir = run_dir

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.is_global_zero:  # before Lightning looks into the folder
            remove_stale_temporaries(self.run_dir, self.run_dir / DIRNAME)
        super().setup(trainer, pl_module, stage)


class UnsafeCheckpoint(AeLabError):
    """A checkpoint that loading would have to run code from (a pickled object of some class)."""


# what torch's refusal names: "Unsupported global: GLOBAL some.module.Class was not allowed"
_REFUSED_GLOBAL = re.compile(r"GLOBAL (\S+)")


def load(path: Path | str, what: str, map_location: Any = "cpu") -> Any:
    """The checkpoint in ``path``, read without running code from it (``weights_only=True``).

    A file that needs more (a pickled object other than tensors, containers and numbers) is
    refused with ``UnsafeCheckpoint``, one line that names it as ``what`` says (the user's key
    and the file) and the object it would have to build. Other errors (a missing or damaged
    file) are the caller's to word.
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = _REFUSED_GLOBAL.search(str(err))
        if "weights only load failed" not in str(err).lower() or found is None:
            raise  # not a pickle at all (a text file: "Unsupported operand"), or a damaged one
        raise UnsafeCheckpoint(
            f"{what} holds an object that loading would have to run code for ({found[1]}); ae_lab "
            "reads checkpoints as weights only (torch.load weights_only=True). Use a checkpoint "
            "ae_lab wrote, or save the model's state_dict alone"
        ) from None


def add_last_checkpoint(callbacks: list[L.Callback], run_dir: Path) -> None:
    """Appends ``LastCheckpoint``; a ``ModelCheckpoint`` of the group that would write the same
    ``last.ckpt`` (``save_last``) leaves it to this one, which writes it every epoch.

    Every ``ModelCheckpoint`` that keeps one file overwrites it rather than adding
    ``best-v1.ckpt`` beside a ``best.ckpt`` of an earlier attempt (one restarted afresh, one
    whose damaged ``last.ckpt`` was set aside): the file a run reports as its best is the one
    named so."""
    last = LastCheckpoint(run_dir)
    for cb in callbacks:
        if isinstance(cb, ModelCheckpoint) and cb.save_top_k == 1:
            cb._enable_version_counter = False  # no public setter; the constructor's argument
        if isinstance(cb, ModelCheckpoint) and cb.save_last and cb.dirpath == last.dirpath:
            cb.save_last = False
    callbacks.append(last)


def last_checkpoint(trainer: L.Trainer) -> LastCheckpoint | None:
    return next((c for c in trainer.checkpoint_callbacks if isinstance(c, LastCheckpoint)), None)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Saves a local checkpoint to a temporary file beside it, synced to disk, then renamed over
    the target: a kill or a full disk mid-write leaves the previous file whole. Remote paths
    (``s3://`` and the like) go through Lightning's own saving."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or not _is_local_file_protocol(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        # one writer per process (rank 0), so the process id keeps two writers apart
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        out: _Writes | None = None
        try:
            with open(tmp, "wb") as f:
                out = _Writes(f)
                torch.save(checkpoint, out)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException as err:
            tmp.unlink(missing_ok=True)
            # torch reports a write that failed as an opaque RuntimeError ("enforce fail at
            # inline_container.cc"); the write's own error says whether the disk was full
            failed = out.error if out is not None else None
            cause = failed if isinstance(err, RuntimeError) and failed else err
            if (full := disk_full(cause, target)) is not None:
                raise full from None
            raise
        _sync_folder(target.parent)


class _Writes:
    """A file as ``torch.save`` writes to it, keeping the error of a write that failed, which
    torch replaces with its own."""

    def __init__(self, file: Any) -> None:
        self.file, self.error = file, None

    def write(self, data: Any) -> int:
        try:
            return self.file.write(data)
        except OSError as err:
            self.error = err
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.file, name)


def _sync_folder(folder: Path) -> None:
    """Makes a rename in ``folder`` survive a crash of the machine, not just of the process."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def use_atomic_writes(trainer: L.Trainer) -> None:
    """Every checkpoint this trainer saves goes through ``AtomicCheckpointIO``; a strategy or
    plugin with its own way of saving (FSDP, DeepSpeed, asynchronous saving) keeps it."""
    if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()


def set_aside(path: Path, why: str) -> Path:
    """Renames a damaged checkpoint out of resume's way, keeping it for a look, and says so."""
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    os.replace(path, aside)
    log.warning("%s is damaged (%s): set aside as %s; training starts afresh", path, why, aside)
    return aside
