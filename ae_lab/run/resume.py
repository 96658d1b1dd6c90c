"""Interrupted runs continue exactly where an unbroken run would have been.

``checkpoints.LastCheckpoint`` writes ``last.ckpt`` at the end of every epoch. Lightning stores the
weights, the optimizer and the loops in it, and the datamodule its batch order and training
corruption (``MNISTDataModule.state_dict``); ``ExactResume`` adds the global random states
(dropout, a VAE's sampling) and puts them back at the start of the next epoch. A run stopped in the
middle of an epoch therefore replays that epoch from its start and ends with the same numbers as a
run that was never stopped. Ctrl-C and SIGTERM (what SLURM sends before it preempts a job) end the
run with a message that says how to continue; Lightning's own signal handling stops the loops, and
no checkpoint is written mid-epoch, so ``last.ckpt`` stays the end of the last finished epoch.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from ae_lab.core import checkpoints
from ae_lab.core.errors import AeLabError, exit_with
from ae_lab.core.records import in_sweep
from ae_lab.run.stopping import how_to_continue, too_few_batches

log = logging.getLogger(__name__)
CHECKPOINT_KEY = "ae_lab"
# under CHECKPOINT_KEY: the choices and settings the run was composed with, as plain values
# (ae_lab.config.trained_run), so that ae-lab-eval rebuilds its model wherever the file lies
RUN_KEY = "run"
# the autoencoder classes of ae_lab before every autoencoder was one composed Autoencoder: their
# checkpoints hold other weight names, and are refused in one line
LEGACY_MODELS = ("DenseAE", "ConvAE", "DenseVAE", "ConvVAE", "SparseAE", "ContractiveAE")


def rng_states() -> dict[str, Any]:
    """Python's, NumPy's and torch's global random states, as types ``torch.load`` accepts with
    ``weights_only=True``."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_states(states: dict[str, Any]) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class ExactResume(L.Callback):
    """Saves the global random states, the model's class name, the run's choices and settings
    (``run``: ``ae_lab.config.trained_run.describe``) and what the epoch logged
    (``trainer.callback_metrics``) in every checkpoint; on resume restores the states when the
    first resumed epoch starts, the point at which the unbroken run had them (checkpoints are
    written at the very end of an epoch).

    A run resumed from the checkpoint of its last epoch (killed after writing it, before its fit
    was recorded) trains no epoch and so logs nothing: the metrics of that epoch are put back
    as the fit ends, so that the run reports every training metric an unbroken run does."""

    def __init__(self, run: dict[str, Any] | None = None) -> None:
        self.resumed: dict[str, Any] | None = None
        self.run = run
        self.logged: dict[str, float] | None = None  # the resumed epoch's, until one trains

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        logged = {k: float(v) for k, v in trainer.callback_metrics.items()}
        checkpoint[CHECKPOINT_KEY] = {
            "model": type(pl_module).__name__,
            "rng": rng_states(),
            RUN_KEY: self.run,
            "metrics": logged,
        }

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        saved = checkpoint.get(CHECKPOINT_KEY, {})
        self.resumed = saved.get("rng")
        logged = saved.get("metrics")
        self.logged = dict(logged) if isinstance(logged, dict) else None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.logged = None  # an epoch trains: it logs its own
        if self.resumed is not None:
            set_rng_states(self.resumed)
            self.resumed = None

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # first among the callbacks (train.build), so that the others' on_fit_end see them
        if self.logged:  # resumed at the end of the last epoch: nothing was logged since
            logged = {k: torch.tensor(v) for k, v in self.logged.items()}
            trainer.callback_metrics.update(
                {k: v for k, v in logged.items() if k not in trainer.callback_metrics}
            )
            self.logged = None


def checkpoint_to_resume(
    ckpt_path: str | None, trainer: L.Trainer, model: L.LightningModule
) -> str | None:
    """The checkpoint ``trainer.fit`` resumes from, checked against the model this run builds.

    ``ckpt_path=last`` is this run directory's own ``last.ckpt`` (``checkpoints.LastCheckpoint``,
    there whatever the callbacks group); a sweep job does the same by itself, so that running a
    sweep again into its directory continues its unfinished jobs. Without a ``last.ckpt`` yet,
    training starts from the beginning; a damaged one is set aside and training starts from the
    beginning too, where a damaged file the user named is an error.
    """
    if ckpt_path is None and not in_sweep():
        return None
    if ckpt_path not in (None, "last"):
        path = Path(ckpt_path).expanduser()
        if not path.is_file():
            raise AeLabError(
                f"ckpt_path={ckpt_path}: no such file. Give a checkpoint file (a run's "
                "checkpoints/last.ckpt), or ckpt_path=last for this run directory's own."
            )
        what = f"ckpt_path={path}"
        check_checkpoint(read_checkpoint(path, what), model, what)
        return str(path)
    own = checkpoints.last_checkpoint(trainer)
    if own is None:
        if ckpt_path == "last":
            raise AeLabError(
                "ckpt_path=last continues from the run's checkpoints/last.ckpt, which "
                "trainer.enable_checkpointing=false turns off: drop one of the two"
            )
        log.warning(
            "trainer.enable_checkpointing=false: this job writes no checkpoint, so running the "
            "sweep again starts it from the beginning"
        )
        return None
    path = own.file
    if not path.is_file():
        if ckpt_path == "last":
            log.info("ckpt_path=last: no %s yet, so training starts from the beginning", path)
        return None
    what = f"ckpt_path=last ({path})" if ckpt_path == "last" else f"this job's {path}"
    try:
        ckpt = read_checkpoint(path, what)
    except DamagedCheckpoint as err:
        checkpoints.set_aside(path, err.reason)
        return None
    check_checkpoint(ckpt, model, what)
    return str(path)


class DamagedCheckpoint(AeLabError):
    """A file that cannot be read as a Lightning checkpoint; ``reason`` says why in a few words."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def read_checkpoint(path: Path, what: str) -> dict[str, Any]:
    """The checkpoint in ``path``; ``what`` names it in messages, as the user knows it."""
    try:
        ckpt = checkpoints.load(path, what)
    except checkpoints.UnsafeCheckpoint:
        raise  # not damaged: refused, and never set aside as if it were
    except OSError as err:
        raise AeLabError(f"{what} cannot be read: {err.strerror}") from err
    except Exception as err:  # noqa: BLE001 - torch's reasons are many and long; the fix is one
        raise DamagedCheckpoint(
            f"{what} cannot be read as a checkpoint: it is damaged or not one "
            f"({type(err).__name__}). Give a run's checkpoints/last.ckpt.",
            reason=f"{type(err).__name__} on reading",
        ) from err
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise DamagedCheckpoint(
            f"{what} is not a Lightning checkpoint (it has no state_dict)", reason="no state_dict"
        )
    return ckpt


def check_checkpoint(ckpt: dict[str, Any], model: L.LightningModule, what: str) -> None:
    """Raises unless ``ckpt`` is one this model can continue from; ``what`` names its file."""
    here = type(model).__name__
    saved = ckpt.get(CHECKPOINT_KEY, {}).get("model", here)
    if saved in LEGACY_MODELS and here != saved:
        raise AeLabError(
            f"{what} was saved by an ae_lab from before autoencoders were composed of an "
            f"encoder, a decoder and an objective (a {saved}), which this one cannot load; "
            "train the model again"
        )
    if saved != here:
        raise AeLabError(
            f"{what} was saved by a {saved} model; this run builds a {here}. "
            "Use the model= of the run that wrote it."
        )
    saved_parts = ckpt.get("hyper_parameters", {})
    for part in ("encoder", "decoder", "objective"):
        theirs, mine = saved_parts.get(part), model.hparams.get(part)
        if theirs is not None and mine is not None and theirs != mine:
            raise AeLabError(
                f"{what} was saved by a model with the {part} {theirs.rsplit('.', 1)[-1]}; this "
                f"run builds one with the {part} {mine.rsplit('.', 1)[-1]}. Use the model= of "
                "the run that wrote it."
            )
    latent = ckpt.get("hyper_parameters", {}).get("latent_dim")
    if latent is not None and latent != model.hparams.get("latent_dim"):
        raise AeLabError(
            f"{what} was saved with latent={latent}; this run has "
            f"latent={model.hparams.get('latent_dim')}. Use latent={latent} with it."
        )
    own = model.state_dict()
    for key, value in ckpt["state_dict"].items():
        if key not in own or own[key].shape != value.shape:
            there = tuple(value.shape)
            mine = tuple(own[key].shape) if key in own else "no such weight"
            raise AeLabError(
                f"{what} does not fit this {here}: its {key} is {there}, here "
                f"{mine}. It was saved with other model settings (model.*)."
            )


@contextlib.contextmanager
def stop_cleanly_on_interrupt(trainer: L.Trainer) -> Iterator[None]:
    """Turns Ctrl-C and SIGTERM during fit or test into one message on how to continue, and exit
    status 130 or 143. Both stop a whole sweep, as they should: the process is being stopped.
    A share of batches that the data turns out too small for ends as the config error it is."""
    try:
        yield
    except MisconfigurationException as err:
        if (mistake := too_few_batches(err)) is None:
            raise
        raise mistake from None
    except SIGTERMException:
        _stopped(trainer, "SIGTERM", 143)
    except KeyboardInterrupt:
        _stopped(trainer, "Ctrl-C", 130)
    except SystemExit as err:
        # Lightning turns Ctrl-C into exit status 1; any other exit (submitit's, after it has
        # requeued a job that SLURM signalled) goes on as it is
        if not (trainer.interrupted and isinstance(err.__context__, KeyboardInterrupt)):
            raise
        _stopped(trainer, "Ctrl-C", 130)


def _evaluating() -> bool:
    """Whether this process runs ``ae-lab-eval`` (a test alone, nothing to continue)."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.initialized() and HydraConfig.get().job.config_name == "eval"


def _stopped(trainer: L.Trainer, what: str, code: int) -> None:
    # the function the trainer ran (Lightning resets ``trainer.testing`` as the stop unwinds)
    testing = trainer.state.fn == TrainerFn.TESTING
    if testing and _evaluating():
        exit_with(f"stopped by {what} during the test; run the same command again", code)
    if testing:  # training is over: its epoch counter stands at max_epochs
        exit_with(
            f"stopped by {what} during the test, after training had finished. Test again, "
            f"with what training recorded, with {how_to_continue()}",
            code,
        )
    exit_with(
        f"stopped by {what} in epoch {trainer.current_epoch} (counting from 0). Continue from "
        f"the end of the last finished epoch with {how_to_continue()}",
        code,
    )
