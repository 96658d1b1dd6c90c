"""The trials of a stored Optuna study as a search that continues sees them: each counted once by
its last attempt, a stopped search's trials recognised (by its process or its heartbeat) and
queued again, and the sampler's seed moved on past the trials the study has. Also how a trial's
job finds its trial in the storage (``trial_overrides``; ``ae_lab.sweeps.optuna_pruning``).

Optuna's public API only: a running trial's owner record is a user attribute, and a retry is
queued by Optuna's ``RetryHeartbeatStaleTrialCallback``, which records what it retries.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import optuna
from hydra.utils import instantiate
from omegaconf import DictConfig
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, Trial, TrialState

from ae_lab.core.errors import ConfigError, one_line

log = logging.getLogger(__name__)

# a running trial's user attribute: the host and process of its search, the trial's number (an
# attempt copied into a retry is not the retry's) and the time of its last heartbeat
OWNER = "ae_lab:owner"
HEARTBEAT_S = 30.0
STALE_S = 120.0
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
# where a trial's job finds its trial: set for the job through ``hydra.job.env_set``
TRIAL_ENV = {
    "storage": "AE_LAB_OPTUNA_STORAGE",
    "study": "AE_LAB_OPTUNA_STUDY",
    "trial": "AE_LAB_OPTUNA_TRIAL",
}


@contextlib.contextmanager
def experimental_ok() -> Iterator[None]:
    """Optuna warns on every use of its retry helpers, experimental since 2.8."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        yield


# hparams_search.pruner=<name>: the options of conf/hparams_search/pruner/, at their settings there
# (Optuna's defaults)
PRUNERS = {
    "median": optuna.pruners.MedianPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "none": optuna.pruners.NopPruner,
}


def make_pruner(value: Any) -> optuna.pruners.BasePruner:
    """The pruner ``hparams_search.pruner`` names: a pruner (its config instantiated), one of
    ``PRUNERS`` by name, or None for none; raises ConfigError for anything else."""
    if value is None:
        return optuna.pruners.NopPruner()
    if isinstance(value, optuna.pruners.BasePruner):
        return value
    if isinstance(value, str) and value in PRUNERS:
        return PRUNERS[value]()
    if isinstance(value, DictConfig):
        try:
            made = instantiate(value)
        except Exception as err:  # noqa: BLE001 - a wrong setting or target, said in one line
            raise ConfigError(f"hparams_search.pruner: {one_line(err)}") from err
        if isinstance(made, optuna.pruners.BasePruner):
            return made
    raise ConfigError(
        f"hparams_search.pruner={value}: give median, hyperband or none "
        "(hparams_search/pruner=<name>, its settings as hparams_search.pruner.<key>=...)"
    )


def latest_attempts(trials: Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """Each trial of the study once, by its last attempt: a retry replaces what it retries."""
    last: dict[int, FrozenTrial] = {}
    with experimental_ok():
        for trial in sorted(trials, key=lambda t: t.number):
            first = RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)
            last[trial.number if first is None else first] = trial
    return list(last.values())


def _alive(pid: int) -> bool:
    if pid == os.getpid():  # between batches this search runs none of its trials
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def stale_reason(trial: FrozenTrial, now: float, host: str) -> str | None:
    """Why a RUNNING trial's search is gone, or None while it may still be running it.

    On this machine the search's process tells; elsewhere only its heartbeat can. A trial
    without an owner record of its own (asked by a search that writes none, or a retry not yet
    taken up) is gone once it has been running for ``STALE_S`` seconds."""
    owner = trial.user_attrs.get(OWNER)
    if not owner or owner.get("number") != trial.number:
        started = trial.datetime_start.timestamp() if trial.datetime_start else 0.0
        return "started by a search that left no heartbeat" if now - started > STALE_S else None
    if owner["host"] == host and not _alive(owner["pid"]):
        return f"its search (process {owner['pid']}) has ended"
    if now - owner["beat"] > STALE_S:
        return f"its search on {owner['host']} has been silent for {now - owner['beat']:.0f} s"
    return None


def continued_sampler(sampler: DictConfig, n_trials_in_study: int) -> Any | None:
    """The configured sampler with its seed moved on by the trials the study already has, or
    None where there is nothing to move on (a fresh study, no seed, the grid sampler)."""
    seed = sampler.get("seed")
    if not n_trials_in_study or seed is None or sampler.get("_partial_"):
        return None
    moved = np.random.SeedSequence([int(seed), n_trials_in_study]).generate_state(1)[0]
    return instantiate(sampler, seed=int(moved))


def objective_values(value: Any, n_directions: int) -> list[float]:
    """The job's return value as the trial's values; raises unless it is a finite number (one
    per direction)."""
    values = list(value) if n_directions > 1 and isinstance(value, Sequence) else [value]
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        numbers = []
    if len(numbers) != n_directions or not all(math.isfinite(v) for v in numbers):
        raise ValueError(f"the job returned {value!r}, not {n_directions} finite number(s)")
    return numbers


def heartbeat(trial: Trial, host: str) -> None:
    """The owner record of a trial this process runs, as of now."""
    record = {"host": host, "pid": os.getpid(), "number": trial.number, "beat": time.time()}
    trial.set_user_attr(OWNER, record)


class Heartbeat:
    """Writes the owner record of the trials being run every ``HEARTBEAT_S`` seconds, so that
    another search on the same storage knows they are alive."""

    def __init__(self, trials: Sequence[Trial], host: str) -> None:
        self.trials = trials
        self.host = host
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="optuna-heartbeat", daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(HEARTBEAT_S):
            try:
                for trial in self.trials:
                    heartbeat(trial, self.host)
            except Exception as err:  # noqa: BLE001 - a missed beat is retried, never fatal
                log.warning("could not record the trials' heartbeat: %s", one_line(err))

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def fail_and_retry(study: optuna.Study, trial: FrozenTrial) -> None:
    """Marks a trial that was stopped before it finished failed, and queues it again with the
    same parameters; counting by last attempts, it counts once, when the retry is done."""
    study.tell(trial.number, state=TrialState.FAIL)
    with experimental_ok():
        RetryHeartbeatStaleTrialCallback()(study, trial)


def _quoted(value: str) -> str:
    """``value`` as a quoted string of Hydra's override grammar."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def trial_overrides(storage: str, study_name: str, number: int) -> list[str]:
    """Hydra overrides that tell a trial's job where its trial is: environment variables set
    while the job runs (``hydra.job.env_set``), whatever the launcher and wherever it runs the
    job. Being Hydra's own settings, they stay out of the job's folder name, its overrides in
    job.json and summary.md, and its identity, so a retried trial's job resumes in the folder
    of the attempt it retries."""
    values = {"storage": storage, "study": study_name, "trial": str(number)}
    return [f"++hydra.job.env_set.{TRIAL_ENV[k]}={_quoted(v)}" for k, v in values.items()]
