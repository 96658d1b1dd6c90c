"""The command that continues a stopped run; a parallel sweep that stops takes its workers along.

The command printed after Ctrl-C or SIGTERM names the run or sweep directory; it is quoted for
Hydra and then for the shell, so that a directory with spaces, commas or quotes can be pasted.

``hydra/launcher=parallel`` runs jobs in joblib's loky worker processes (about 1 GB each). A
worker does not watch the sweep's process: if that process died by a signal, its workers would
train on to the end of their jobs. ``ParallelWorkers`` therefore makes SIGTERM and Ctrl-C in the
sweep's process end it through an exception, which joblib answers by killing its workers, and on
Linux asks the kernel to kill each worker when the sweep's process dies, ``kill -9`` included.
Each worker leaves Ctrl-C to the sweep's process, so that a terminal's Ctrl-C, which reaches
every process of the sweep, is answered once.
"""

from __future__ import annotations

import ctypes
import os
import re
import shlex
import signal
import sys
from types import FrameType
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.types import Quote, QuotedString
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ae_lab.core.errors import ConfigError, exit_with

# paths Hydra reads back unchanged without quotes: a "/" keeps them from reading as a number,
# a boolean or null; Hydra's quotes take care of the rest
_PLAIN_PATH = re.compile(r"[\w.+-]*/[\w./+-]*")
_STOPS = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "Ctrl-C"}
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def shell_override(key: str, value: str) -> str:
    """``key=value`` as one shell word that Hydra parses back to ``value``."""
    if not _PLAIN_PATH.fullmatch(value):
        value = QuotedString(text=value, quote=Quote.double).with_quotes()
    return shlex.quote(f"{key}={value}")


def how_to_continue() -> str:
    """The overrides that continue this run (or sweep) where it stopped."""
    if not HydraConfig.initialized():
        return "ckpt_path=last"
    hydra = HydraConfig.get()
    if hydra.mode == RunMode.MULTIRUN:
        return f"the same command with {shell_override('hydra.sweep.dir', hydra.sweep.dir)}"
    run_dir = shell_override("hydra.run.dir", hydra.runtime.output_dir)
    return f"the same command with {run_dir} ckpt_path=last"


def _uses_joblib(config: DictConfig) -> bool:
    target = OmegaConf.select(config, "hydra.launcher._target_", default="") or ""
    return target.endswith("JoblibLauncher")


class ParallelWorkers(Callback):
    """With Hydra's joblib launcher: SIGTERM and Ctrl-C end the sweep and its workers at once,
    with one message on how to continue it, and a worker dies with the sweep's process."""

    def __init__(self) -> None:
        self.sweep_pid: int | None = None
        self.sweep_dir = ""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not _uses_joblib(config):
            return
        # read now: the folder's ${now:...} would give another name at the time of a signal
        self.sweep_dir = str(config.hydra.sweep.dir)
        self.sweep_pid = os.getpid()
        for signum in _STOPS:
            signal.signal(signum, self._stop)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        for other in _STOPS:  # a second signal must not cut short the killing of the workers
            signal.signal(other, signal.SIG_IGN)
        # joblib catches the SystemExit this raises, kills its workers and raises it on
        where = shell_override("hydra.sweep.dir", self.sweep_dir)
        exit_with(
            f"stopped by {_STOPS[signal.Signals(signum)]}, with the jobs that were running. "
            f"Continue the sweep with the same command with {where}",
            128 + signum,
        )

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if self.sweep_pid is None or os.getpid() == self.sweep_pid:
            return  # not a worker of a joblib sweep
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        die_with_parent(self.sweep_pid)


def die_with_parent(parent: int) -> None:
    """Has the kernel kill this process when ``parent`` dies (Linux); elsewhere nothing."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return
    if os.getppid() != parent:  # it died before the request was made
        os.kill(os.getpid(), signal.SIGKILL)


# Lightning's refusal of a share of batches that is less than one batch of this data
_TOO_FEW_BATCHES = re.compile(
    r"You requested to check (\S+) of the `(\w+)_dataloader` but \S+ \* (\d+) < 1\."
    r".*Try at least `(\w+)=([^`]+)`"
)


def too_few_batches(err: BaseException) -> ConfigError | None:
    """``trainer.limit_*_batches`` as a share of an epoch that is less than one batch: found only
    once the data is loaded (its number of batches), worded as a setting out of range."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    found = _TOO_FEW_BATCHES.search(str(err))
    if not isinstance(err, MisconfigurationException) or found is None:
        return None
    share, split, n, key, least = found.groups()
    return ConfigError(
        f"trainer.{key}={share} of the {n} {split} batches is less than one batch; give at least "
        f"{least}, or a number of batches (an integer >= 1)"
    )
