"""What a sweep prints: where it is, and a few lines per job.

Each job starts with ``job k of n: <its overrides>`` (those that tell it apart from the other
jobs, as its folder name does) and ends with one line: its headline metrics and its time, or that
it failed, with the job's log file, which keeps everything else it logged. In between, the
console of a sweep job shows warnings and errors and the sweep's own lines (``sweep summary
updated``); the progress bar shows on a terminal only
(``ae_lab.callbacks.progress_and_summary``). The sweep's end lines are the sweep callback's
(``ae_lab.sweeps.sweep``).

``n`` is known in the process that drives the sweep: for Hydra's basic sweeper the number of
combinations of its overrides, for Optuna's ``n_trials``. Jobs may run in other processes (the
parallel, submitit and Ray launchers), so it reaches them the way every job's config does, as an
override the driver adds (``hydra.job.env_set.AE_LAB_SWEEP_JOBS``). ``k`` is Hydra's
``hydra.job.num`` + 1. The start and end lines are printed, not logged, so the log file of a job
that a re-run skips stays as it was.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from ae_lab.core import earlier_run, records
from ae_lab.core.identity import override_key
from ae_lab.reporting import metrics as headline
from ae_lab.sweeps import names

log = logging.getLogger(__name__)
JOBS_KEY = "AE_LAB_SWEEP_JOBS"
ENV_SET = "hydra.job.env_set"


def job_count(config: DictConfig) -> int | None:
    """How many jobs the sweep in ``config`` runs: the combinations of Hydra's basic sweeper (its
    ``params`` and the command line, as it reads them), a search's ``n_trials``; None otherwise."""
    sweeper = OmegaConf.select(config, "hydra.sweeper") or {}
    if "n_trials" in sweeper:
        return int(sweeper.n_trials)
    if not str(sweeper.get("_target_", "")).endswith(".BasicSweeper"):
        return None
    params = sweeper.get("params") or {}
    lines = [f"{k}={v}" for k, v in params.items()] + list(config.hydra.overrides.task)
    batches = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(lines), None)
    return sum(len(batch) for batch in batches)


def job_overrides(config: DictConfig) -> str:
    """The job's overrides that the sweep's other jobs do not share (all of them when the sweep
    varies nothing), as typed."""
    task = list(config.hydra.overrides.task)
    shared = set(OmegaConf.select(config, names.EXCLUDE_KEYS, default=[]) or [])
    telling = [o for o in task if override_key(o) not in shared] or task
    return " ".join(telling) or "(the defaults)"


def position(config: DictConfig) -> str:
    """``job 3 of 8`` (``job 3`` when the sweep's size is not known)."""
    k = int(OmegaConf.select(config, "hydra.job.num", default=0) or 0) + 1
    n = OmegaConf.select(config, f"{ENV_SET}.{JOBS_KEY}", default=None)
    return f"job {k} of {n}" if n else f"job {k}"


def end_line(config: DictConfig, job_return: JobReturn) -> str:
    """``job 3 of 8 completed in 41 s: test/mse 0.01, ...; details in <log file>`` (``in 41 s
    over 2 attempts`` for a job a re-run continued)."""
    out = Path(config.hydra.runtime.output_dir)
    logs = [p for p in records.open_log_files() if p.parent == out]
    where = f"; details in {_shown(logs[0] if logs else out)}"
    if job_return.status != JobStatus.COMPLETED:
        return f"{position(config)} failed{where}"
    values = records.read_metrics(out) if (out / records.METRICS_FILE).is_file() else {}
    shown = []
    for name, value in headline.select(values, headline.RUN_END).items():
        metric = headline.find(name)
        shown.append(f"{name} {metric.format(value) if metric else f'{value:.4g}'}")
    took = values.get("time/wall_s")
    timing = f" in {took:.0f} s" if isinstance(took, int | float) else ""
    record = records.read(out)
    if record is not None and len(record.attempts) > 1:  # continued where a stop left it
        timing += f" over {len(record.attempts)} attempts"
    return f"{position(config)} completed{timing}: {', '.join(shown) or 'no metrics'}{where}"


def _shown(path: Path) -> str:
    """``path`` relative to the working folder when it lies inside it, as the sweep lines are."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# loggers whose lines a sweep job's console keeps: the sweep's own, and the run's life (an earlier
# run set aside, a record repaired), which decides what the job does with its folder
SHOWN = ("ae_lab.sweeps", "ae_lab.core.lifecycle", "ae_lab.core.earlier_run")


class SweepJobConsole(logging.Filter):
    """On a sweep job's console: warnings, errors and the sweep's own lines; the job's log file
    keeps every line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name.startswith(SHOWN)


class SweepConsole(Callback):
    """``job k of n`` at the start and end of each job of a sweep, and a short console between.
    Listed after the sweep callback, so that its start line follows that callback's decision to
    skip the job and its end line comes before the sweep summary's."""

    def __init__(self) -> None:
        self.skipped = False

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            n = job_count(config)
        except Exception:  # noqa: BLE001 - "job k" rather than no sweep: the sweeper, which
            # parses the same overrides, says what is wrong with them
            log.debug("sweep size not known", exc_info=True)
            return
        if n is None:
            return
        with read_write(config.hydra), open_dict(config.hydra):
            # every job's config is composed afresh from these (Hydra's load_sweep_config)
            config.hydra.overrides.hydra.append(f"++{ENV_SET}.{JOBS_KEY}={n}")
            OmegaConf.update(config, f"{ENV_SET}.{JOBS_KEY}", str(n), merge=False)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.skipped = False
        if config.hydra.mode != RunMode.MULTIRUN or not records.rank_zero():
            return
        out = Path(str(config.hydra.runtime.output_dir))
        self.skipped = earlier_run.completed_already(config, out)
        what = ": completed in an earlier run of this sweep, skipped" if self.skipped else ""
        print(f"{position(config)}: {job_overrides(config)}{what}", flush=True)
        for handler in logging.getLogger().handlers:  # Hydra's, configured for this job
            if isinstance(handler, logging.StreamHandler) and not isinstance(
                handler, logging.FileHandler
            ):
                handler.addFilter(SweepJobConsole())

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode != RunMode.MULTIRUN or not records.rank_zero() or self.skipped:
            return
        print(end_line(config, job_return), flush=True)
