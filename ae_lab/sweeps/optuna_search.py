"""The Optuna search of ``hparams_search=optuna``: Optuna's ask-and-tell loop over Hydra's launcher.

Each batch of ``n_jobs`` trials is asked from the study, handed to the configured launcher as
Hydra jobs, and told back with the value each job returned (``optimized_metric``). What one run of
a search does:

- ``n_trials`` is the size of the whole study: a run starts only the trials still missing. The
  sampler's seed moves on with the number of trials the study has, so a run draws new values
  (TPE conditions on all stored trials either way), while a fresh study keeps ``seed`` itself.
- A trial whose search has gone (its process on this machine has ended, or it has written no
  heartbeat for ``STALE_S`` seconds) is marked failed and queued again with the same parameters;
  a search that is stopped does the same for its own trials. Every trial counts once, by its
  last attempt.
- A failed trial is recorded as failed and the search goes on, until more than
  ``max_failure_rate`` x ``n_trials`` trials of the study have failed.
- A trial whose job its pruner stopped (``ae_lab.sweeps.optuna_pruning``; the pruner is the
  job's, ``hparams_search.pruner``) is told pruned, and counts as finished.

The study is kept in ``storage`` (an SQLAlchemy URL such as ``sqlite:///optuna.db``), or, without
one, in ``<sweep dir>/optuna.db``: the jobs, which launchers may run in other processes or on
other machines, report to their trial there (``ae_lab.sweeps.optuna_study``: the study, how each
job's outcome is told to it, and the results file).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf
from optuna.trial import Trial, TrialState

from ae_lab.core.errors import AeLabError, ConfigError, exit_with, full_error_wanted, one_line
from ae_lab.sweeps import optuna_space, optuna_study
from ae_lab.sweeps.optuna_trials import (
    FINISHED,
    HEARTBEAT_S,
    Heartbeat,
    continued_sampler,
    fail_and_retry,
    heartbeat,
    latest_attempts,
    make_pruner,
    stale_reason,
    trial_overrides,
)

log = logging.getLogger(__name__)


class OptunaSearch(Sweeper):
    """The search (see the module docstring); built by ``hydra_plugins.ae_lab.optuna_sweeper``
    with the settings under ``hydra.sweeper``."""

    def __init__(
        self,
        sampler: Any = None,
        direction: str | Sequence[str] = "minimize",
        storage: str | None = None,
        study_name: str | None = None,
        n_trials: int = 20,
        n_jobs: int = 1,
        max_failure_rate: float = 0.0,
        params: DictConfig | None = None,
        custom_search_space: str | None = None,
        **unknown: Any,
    ) -> None:
        self.unknown = sorted(unknown)  # refused in one line when the search starts
        self.sampler = sampler
        self.direction = direction
        self.storage = storage
        self.study_name = study_name
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.max_failure_rate = max_failure_rate
        self.params = params
        self.custom_search_space = custom_search_space
        self.host = socket.gethostname()
        self.config: DictConfig | None = None
        self.launcher: Any = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> None:
        """The search; a problem the user can fix ends it with one line (ae_lab.core.errors)."""
        try:
            self._check_settings()
            self._search(arguments)
        except AeLabError as err:
            if full_error_wanted():
                raise
            exit_with(str(err), err.exit_code)

    def _check_settings(self) -> None:
        if self.unknown:
            raise ConfigError(
                f"hydra.sweeper.{self.unknown[0]}: not a setting of the Optuna search; it takes "
                "direction, n_trials, n_jobs, max_failure_rate, study_name, storage, sampler, "
                "params and custom_search_space (the pruner: hparams_search.pruner)"
            )
        for key in ("n_trials", "n_jobs"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"hydra.sweeper.{key}={value}: give an integer >= 1")
        if not 0 <= self.max_failure_rate <= 1:
            raise ConfigError(
                f"hydra.sweeper.max_failure_rate={self.max_failure_rate}: give the fraction of "
                "n_trials that may fail, from 0 to 1"
            )
        if self.config is not None:  # the jobs make it: a wrong one is said before any starts
            make_pruner(OmegaConf.select(self.config, "hparams_search.pruner"))
        for direction in self._directions():
            if direction not in ("minimize", "maximize"):
                raise ConfigError(
                    f"hydra.sweeper.direction={self.direction}: give minimize or maximize "
                    "(a list of them for several objectives)"
                )

    def _directions(self) -> list[str]:
        if isinstance(self.direction, str):
            return [self.direction]
        return [str(d) for d in self.direction]

    def _search(self, arguments: list[str]) -> None:
        assert self.config is not None
        params = [f"{k!s}={v}" for k, v in (self.params or {}).items()]
        space, fixed = optuna_space.parse(params + list(arguments))
        directions = self._directions()
        storage = optuna_study.storage_url(self.storage, self.config.hydra.sweep.dir)
        if self.storage is None:
            Path(self.config.hydra.sweep.dir).mkdir(parents=True, exist_ok=True)
        study = optuna_study.open_study(
            storage, self.storage, self.study_name, self.sampler, directions
        )
        self._retry_stale(study)
        n_trials_in_study = len(study.get_trials(deepcopy=False))
        sampler = continued_sampler(self.config.hydra.sweeper.sampler, n_trials_in_study)
        if sampler is not None:
            study.sampler = sampler
        optuna_study.announce(study, self.n_trials)
        waiting = False
        while True:
            self._retry_stale(study)
            latest = latest_attempts(study.get_trials(deepcopy=False))
            failed = [t for t in latest if t.state == TrialState.FAIL]
            optuna_study.check_failures(study, failed, self.max_failure_rate, self.n_trials)
            running = [t.number for t in latest if t.state == TrialState.RUNNING]
            to_go = self.n_trials - sum(t.state in FINISHED for t in latest) - len(running)
            if to_go <= 0 and not running:
                break
            if to_go <= 0:  # another search runs the last trials; they may yet need a retry
                if not waiting:
                    log.info("waiting for trials %s, which another search is running", running)
                waiting = True
                time.sleep(HEARTBEAT_S)
                continue
            trials = [self._ask(study) for _ in range(min(self.n_jobs, to_go))]
            try:
                overrides = [self._configure(trial, space, fixed) for trial in trials]
            except ValueError as err:  # a queued trial from before the search space changed
                for trial in trials:
                    study.tell(trial, state=TrialState.FAIL)
                log.warning("trials %s failed: %s", [t.number for t in trials], one_line(err))
                continue
            jobs = [
                (*o, *trial_overrides(storage, study.study_name, t.number))
                for o, t in zip(overrides, trials, strict=True)
            ]
            returns = self._run(study, trials, jobs)
            optuna_study.tell(study, trials, returns, len(directions))
        optuna_study.write_results(study, directions, self.config.hydra.sweep.dir)

    def _ask(self, study: optuna.Study) -> Trial:
        """A new trial (or a queued retry), marked as this process's at once."""
        trial = study.ask()
        heartbeat(trial, self.host)
        return trial

    def _configure(
        self, trial: Trial, space: dict[str, Any], fixed: dict[str, str]
    ) -> tuple[str, ...]:
        """A trial's parameters as Hydra overrides, in one order for every attempt of a trial:
        the search space's, then other suggested parameters by name, then the fixed ones.
        Optuna's storage gives a retried trial its parameters in its own order, and the job's
        folder name follows it; in one order, a retry runs in the folder of the attempt it
        retries and resumes there."""
        assert self.config is not None
        for name, dist in space.items():
            optuna_space.suggest(trial, name, dist)
        for name, value in fixed.items():
            trial.set_user_attr(name, value)
        if self.custom_search_space:
            get_method(self.custom_search_space)(self.config, trial)
        overlap = trial.params.keys() & fixed.keys()
        if overlap:
            raise ValueError(f"parameters both searched and fixed: {sorted(overlap)}")
        rank = {name: (0, i, "") for i, name in enumerate(space)}
        searched = sorted(trial.params, key=lambda n: rank.get(n, (1, 0, n)))
        return (
            *(f"{name}={trial.params[name]}" for name in searched),
            *(f"{name}={value}" for name, value in fixed.items()),
        )

    def _retry_stale(self, study: optuna.Study) -> None:
        now = time.time()
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            reason = stale_reason(trial, now, self.host)
            if reason is not None:
                log.warning(
                    "trial %d was left running (%s): marked failed, it runs again with the "
                    "same parameters",
                    trial.number,
                    reason,
                )
                fail_and_retry(study, trial)

    def _run(
        self, study: optuna.Study, trials: list[Trial], overrides: list[tuple[str, ...]]
    ) -> Sequence[JobReturn]:
        """Launches one batch; when the search is stopped meanwhile, its trials are queued again
        for the next run of the search."""
        try:
            with Heartbeat(trials, self.host):
                return self.launcher.launch(overrides, initial_job_idx=trials[0].number)
        except BaseException:
            numbers = {t.number for t in trials}
            for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                if frozen.number in numbers:
                    with contextlib.suppress(Exception):  # the next run finds it stale anyway
                        fail_and_retry(study, frozen)
            raise
