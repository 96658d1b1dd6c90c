"""An Optuna search that running it again continues: what ``hparams_search=optuna`` runs.

Hydra's Optuna sweeper (hydra-optuna-sweeper 1.3.0) runs ``n_trials`` *more* trials each time it
is started, and with the sampler seeded by ``seed`` again, a search run again with its storage
ran its first trials again, value for value. A killed search left its trials RUNNING in the
storage for ever, and ``max_failure_rate`` was compared per batch of ``n_jobs`` trials, so with
one trial at a time one failed trial ended the search. This sweeper keeps the plugin's search
space, trial configuration and launching, and changes what one run of a search does:

- ``n_trials`` is the size of the whole study: a run starts only the trials still missing. The
  sampler's seed moves on with the number of trials the study has, so a run draws new values
  (TPE conditions on all stored trials either way), while a fresh study keeps ``seed`` itself.
- A trial whose search has gone (its process on this machine has ended, or it has written no
  heartbeat for ``STALE_S`` seconds) is marked failed and queued again with the same parameters
  (Optuna's ``RetryFailedTrialCallback``); a search that is stopped does the same for its own
  trials. Every trial counts once, by its last attempt.
- A failed trial is recorded as failed and the search goes on, until more than
  ``max_failure_rate`` x ``n_trials`` trials of the study have failed.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import socket
import time
from collections.abc import Sequence
from typing import Any

import optuna
from hydra.core.utils import JobReturn
from hydra_plugins.hydra_optuna_sweeper._impl import (
    OptunaSweeperImpl,
    create_params_from_overrides,
)
from omegaconf import OmegaConf
from optuna.trial import FrozenTrial, Trial, TrialState

from ae_lab.run.errors import AeLabError, ConfigError, exit_with, full_error_wanted, one_line
from ae_lab.sweeps.optuna_trials import (
    FINISHED,
    HEARTBEAT_S,
    Heartbeat,
    continued_sampler,
    fail_and_retry,
    heartbeat,
    latest_attempts,
    objective_values,
    stale_reason,
)

log = logging.getLogger(__name__)


class ContinuingSearch(OptunaSweeperImpl):
    """The plugin's sweeper with its search loop replaced (see the module docstring)."""

    def __init__(self, max_failure_rate: float, **settings: Any) -> None:
        # the plugin asserts the range, and Hydra would wrap that in two lines of its own: the
        # value is checked with a message of ours when the search starts (_check_settings)
        super().__init__(max_failure_rate=min(max(max_failure_rate, 0.0), 1.0), **settings)
        self.max_failure_rate = max_failure_rate
        self.host = socket.gethostname()

    def sweep(self, arguments: list[str]) -> None:
        """The search; a problem the user can fix ends it with one line (ae_lab.run.errors)."""
        try:
            self._check_settings()
            self._search(arguments)
        except AeLabError as err:
            if full_error_wanted():
                raise
            exit_with(str(err), err.exit_code)

    def _check_settings(self) -> None:
        for key in ("n_trials", "n_jobs"):
            if getattr(self, key) < 1:
                raise ConfigError(f"hydra.sweeper.{key}={getattr(self, key)}: give an integer >= 1")
        if not 0 <= self.max_failure_rate <= 1:
            raise ConfigError(
                f"hydra.sweeper.max_failure_rate={self.max_failure_rate}: give the fraction of "
                "n_trials that may fail, from 0 to 1"
            )

    def _search(self, arguments: list[str]) -> None:
        self._process_searchspace_config()
        overrides = self._parse_sweeper_params_config() + list(arguments)
        distributions, fixed = create_params_from_overrides(overrides)
        distributions = {**(self.search_space_distributions or {}), **distributions}
        grid = self._grid_sampler(distributions)
        for name in fixed:
            distributions.pop(name, None)
        directions = self._get_directions()

        study = optuna.create_study(
            study_name=self.study_name,
            storage=self.storage,
            sampler=self.sampler,
            directions=directions,
            load_if_exists=True,
        )
        self._retry_stale(study)
        n_trials_in_study = len(study.get_trials(deepcopy=False))
        sampler = continued_sampler(self.config.hydra.sweeper.sampler, n_trials_in_study)
        if sampler is not None:
            study.sampler = sampler
        self._announce(study)
        waiting = False
        while True:
            self._retry_stale(study)
            latest = latest_attempts(study.get_trials(deepcopy=False))
            self._check_failures(study, [t for t in latest if t.state == TrialState.FAIL])
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
                overrides = self._configure_trials(trials, distributions, fixed)
            except ValueError as err:  # a queued trial from before the search space changed
                for trial in trials:
                    study.tell(trial, state=TrialState.FAIL)
                log.warning("trials %s failed: %s", [t.number for t in trials], one_line(err))
                continue
            returns = self._run(study, trials, overrides)
            self._tell(study, trials, returns, len(directions), grid)
        self._write_results(study, directions)

    def _grid_sampler(self, distributions: dict[str, Any]) -> bool:
        """The plugin's handling of ``sampler=grid``: the grid from the search space, and no
        more trials than it has points."""
        sampler = self.sampler
        if not (
            isinstance(sampler, functools.partial) and sampler.func is optuna.samplers.GridSampler
        ):
            return False
        grid = {k: self._to_grid_sampler_choices(d) for k, d in distributions.items()}
        self.sampler = sampler(grid)
        self.n_trials = min(self.n_trials, math.prod(len(v) for v in grid.values()))
        return True

    def _ask(self, study: optuna.Study) -> Trial:
        """A new trial (or a queued retry), marked as this process's at once."""
        trial = study.ask()
        heartbeat(trial, self.host)
        return trial

    def _configure_trials(
        self,
        trials: list[Trial],
        search_space_distributions: dict[str, Any],
        fixed_params: dict[str, Any],
    ) -> list[tuple[str, ...]]:
        """The plugin's overrides in one order for every attempt of a trial: the search space's,
        then other suggested parameters by name, then the fixed ones. Optuna's storage gives a
        retried trial its parameters in its own order, and the job's folder name follows it;
        in one order, a retry runs in the folder of the attempt it retries and resumes there."""
        rank = {name: (0, i, "") for i, name in enumerate(search_space_distributions)}
        rank |= {name: (2, i, "") for i, name in enumerate(fixed_params)}

        def key(override: str) -> tuple[int, int, str]:
            name = override.split("=", 1)[0]
            return rank.get(name, (1, 0, name))

        configured = super()._configure_trials(trials, search_space_distributions, fixed_params)
        return [tuple(sorted(overrides, key=key)) for overrides in configured]

    def _announce(self, study: optuna.Study) -> None:
        latest = latest_attempts(study.get_trials(deepcopy=False))
        done = sum(t.state in FINISHED for t in latest)
        if not done:
            log.info("study %s: a new search of %d trials", study.study_name, self.n_trials)
        elif done >= self.n_trials:
            log.info(
                "study %s has its %d trials (n_trials=%d): nothing to run; a larger "
                "hydra.sweeper.n_trials runs more",
                study.study_name,
                done,
                self.n_trials,
            )
        else:
            log.info(
                "study %s continues: %d of %d trials finished, %d to run",
                study.study_name,
                done,
                self.n_trials,
                self.n_trials - done,
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

    def _tell(
        self,
        study: optuna.Study,
        trials: list[Trial],
        returns: Sequence[JobReturn],
        n_directions: int,
        grid: bool,
    ) -> None:
        for trial, ret in zip(trials, returns, strict=True):
            try:
                values = objective_values(ret.return_value, n_directions)  # a job's error too
            except Exception as err:  # noqa: BLE001 - any failure of a job fails its trial
                study.tell(trial, state=TrialState.FAIL)
                log.warning("trial %d failed: %s", trial.number, one_line(err))
                continue
            try:
                study.tell(trial, values)
            except RuntimeError:  # the grid sampler stops the study when the grid is done
                if not grid:
                    raise

    def _check_failures(self, study: optuna.Study, failed: list[FrozenTrial]) -> None:
        if len(failed) > self.max_failure_rate * self.n_trials:
            raise AeLabError(
                f"study {study.study_name}: {len(failed)} failed trial(s) (numbers "
                f"{[t.number for t in failed]}), more than hydra.sweeper.max_failure_rate="
                f"{self.max_failure_rate} x n_trials={self.n_trials} allows, so the search "
                "stopped. Each failed job's error is in its job.json and in the sweep's "
                "summary.md; to go on, raise hydra.sweeper.max_failure_rate or start another "
                "study (hydra.sweeper.study_name)"
            )

    def _write_results(self, study: optuna.Study, directions: list[str]) -> None:
        """``optimization_results.yaml`` as the plugin writes it, over the whole study."""
        if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            raise AeLabError(f"no trial of study {study.study_name} completed")
        results: dict[str, Any] = {"name": "optuna"}
        if len(directions) == 1:
            best = study.best_trial
            results |= {"best_params": best.params, "best_value": best.value}
            log.info("Best parameters: %s", best.params)
            log.info("Best value: %s", best.value)
        else:
            results["solutions"] = [
                {"params": t.params, "values": t.values} for t in study.best_trials
            ]
            log.info("Number of Pareto solutions: %d", len(study.best_trials))
        OmegaConf.save(
            OmegaConf.create(results), f"{self.config.hydra.sweep.dir}/optimization_results.yaml"
        )
