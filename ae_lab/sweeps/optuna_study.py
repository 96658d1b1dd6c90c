"""The study an Optuna search (``ae_lab.sweeps.optuna_search``) asks its trials from: where it is
kept, how it is opened, what the search says of it as it starts, how each job's outcome is told
back to it, when its failures stop the search, and the results file written from it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf
from optuna.trial import FrozenTrial, Trial, TrialState

from ae_lab.core.errors import AeLabError, ConfigError, one_line
from ae_lab.sweeps.optuna_trials import FINISHED, latest_attempts, objective_values

log = logging.getLogger(__name__)
SQLITE = "sqlite:///"
DEFAULT_DB = "optuna.db"


def storage_url(storage: str | None, sweep_dir: str | Path) -> str:
    """The study's storage as every job can reach it: ``<sweep dir>/optuna.db`` without one, and
    an SQLite file named relative to this directory made absolute (a job may run elsewhere)."""
    if storage is None:
        return SQLITE + str(Path(sweep_dir).resolve() / DEFAULT_DB)
    url = str(storage)
    if url.startswith(SQLITE):
        path, sep, query = url[len(SQLITE) :].partition("?")
        if path and not path.startswith((":memory:", "/", "file:")):
            return SQLITE + str(Path(path).resolve()) + sep + query
    return url


def open_study(
    storage: str, setting: str | None, name: str | None, sampler: Any, directions: list[str]
) -> optuna.Study:
    """The study ``name`` in ``storage`` (the URL made from ``hydra.sweeper.storage``,
    ``setting``), made when it is not there yet."""
    try:
        return optuna.create_study(
            study_name=name,
            storage=storage,
            sampler=sampler,
            directions=directions,
            load_if_exists=True,
        )
    except RuntimeError as err:  # a storage an older Optuna made: upgraded by one command
        if "storage upgrade" not in str(err):
            raise
        raise AeLabError(
            f"hydra.sweeper.storage={setting}: {one_line(err)} (Optuna {optuna.__version__})"
        ) from err
    except ValueError as err:  # the stored study's directions are not the configured ones
        raise ConfigError(f"hydra.sweeper.direction: {one_line(err)}") from err


def announce(study: optuna.Study, n_trials: int) -> None:
    """One line: a new search, one that continues, or one that has its trials already."""
    latest = latest_attempts(study.get_trials(deepcopy=False))
    done = sum(t.state in FINISHED for t in latest)
    if not done:
        log.info("study %s: a new search of %d trials", study.study_name, n_trials)
    elif done >= n_trials:
        log.info(
            "study %s has its %d trials (n_trials=%d): nothing to run; a larger "
            "hydra.sweeper.n_trials runs more",
            study.study_name,
            done,
            n_trials,
        )
    else:
        log.info(
            "study %s continues: %d of %d trials finished, %d to run",
            study.study_name,
            done,
            n_trials,
            n_trials - done,
        )


def is_pruned(ret: JobReturn) -> bool:
    return ret.status == JobStatus.FAILED and isinstance(ret._return_value, optuna.TrialPruned)


def tell(
    study: optuna.Study, trials: list[Trial], returns: Sequence[JobReturn], n_directions: int
) -> None:
    """Each trial's outcome, from its job: its objective values, pruned, or failed."""
    for trial, ret in zip(trials, returns, strict=True):
        if is_pruned(ret):
            study.tell(trial, state=TrialState.PRUNED)
            log.info("trial %d pruned: %s", trial.number, one_line(ret._return_value))
            continue
        try:
            values = objective_values(ret.return_value, n_directions)  # a job's error too
        except Exception as err:  # noqa: BLE001 - any failure of a job fails its trial
            study.tell(trial, state=TrialState.FAIL)
            log.warning("trial %d failed: %s", trial.number, one_line(err))
            continue
        study.tell(trial, values)


def check_failures(
    study: optuna.Study, failed: list[FrozenTrial], max_failure_rate: float, n_trials: int
) -> None:
    """Stops the search once more trials have failed than ``max_failure_rate`` allows."""
    if len(failed) > max_failure_rate * n_trials:
        raise AeLabError(
            f"study {study.study_name}: {len(failed)} failed trial(s) (numbers "
            f"{[t.number for t in failed]}), more than hydra.sweeper.max_failure_rate="
            f"{max_failure_rate} x n_trials={n_trials} allows, so the search "
            "stopped. Each failed job's error is in its job.json and in the sweep's "
            "summary.md; to go on, raise hydra.sweeper.max_failure_rate or start another "
            "study (hydra.sweeper.study_name)"
        )


def write_results(study: optuna.Study, directions: list[str], sweep_dir: str) -> None:
    """``optimization_results.yaml`` as Hydra's Optuna sweeper wrote it, over the whole study."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise AeLabError(f"no trial of study {study.study_name} completed")
    results: dict[str, Any] = {"name": "optuna"}
    if len(directions) == 1:
        best = study.best_trial
        results |= {"best_params": best.params, "best_value": best.value}
        log.info("Best parameters: %s", best.params)
        log.info("Best value: %s", best.value)
    else:
        results["solutions"] = [{"params": t.params, "values": t.values} for t in study.best_trials]
        log.info("Number of Pareto solutions: %d", len(study.best_trials))
    OmegaConf.save(OmegaConf.create(results), f"{sweep_dir}/optimization_results.yaml")
