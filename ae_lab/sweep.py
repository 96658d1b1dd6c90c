"""A Hydra callback that records each job's outcome and keeps the sweep's summary current.

A job that fails (a setting out of range, a NaN loss, a crash) raises; Hydra's launchers record
it as failed, run the remaining jobs, and only then raise the first failure, so the sweep exits
non-zero and ``on_multirun_end`` never runs. Each job therefore writes its status (``job.json``)
in ``on_job_end`` and rebuilds the sweep summary; ``on_multirun_end`` rebuilds it once more.
A job without ``job.json`` was stopped (Ctrl-C, SIGTERM, a kill) and shows as incomplete.

Running the same sweep again with ``hydra.sweep.dir=<that sweep>`` continues it: a job whose
``job.json`` says completed is skipped with its files untouched (``completed_metrics``), and any
other job resumes from its ``last.ckpt`` (``ae_lab.resume``) or starts afresh.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ae_lab import report, run_dir
from ae_lab.errors import AeLabError, exit_with, full_error_wanted, one_line

log = logging.getLogger(__name__)


def _select(config: DictConfig, key: str) -> Any:
    try:
        return OmegaConf.select(config, key, throw_on_missing=False)
    except Exception:  # noqa: BLE001 - an unresolvable value is just not recorded
        return None


def _completed(job_dir: Path) -> bool:
    status = report.load_json(job_dir / report.STATUS_FILE)
    return status.get("status") == "completed"


def completed_metrics() -> dict[str, float] | None:
    """This sweep job's metrics when an earlier run of the same sweep completed it, else None."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    job_dir = Path(HydraConfig.get().runtime.output_dir)
    return report.load_json(job_dir / report.METRICS_FILE) if _completed(job_dir) else None


class SweepSummary(Callback):
    """``job.json`` in every job dir; ``summary.csv``, ``summary.md`` and ``mse_vs_latent.png``
    in the sweep dir. ``reference`` lists published figures (``metric``, ``value``, ``what``)
    that ``summary.md`` shows beside this sweep's."""

    def __init__(self, reference: list[dict[str, Any]] | None = None) -> None:
        self.reference = [dict(r) for r in reference or []]
        self.started: float | None = None
        self.skipped = False
        self.made: Path | None = None  # the outermost folder this single run made

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.made = run_dir.make(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        run_dir.make(config.hydra.sweep.dir, "hydra.sweep.dir")

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started = time.time()
        out = Path(config.hydra.runtime.output_dir)
        self.skipped = config.hydra.mode == RunMode.MULTIRUN and _completed(out)
        if self.skipped:  # printed, not logged: the job's train.log stays as it was
            print(f"{out.name}: completed in an earlier run of this sweep, skipped")
        else:  # a stale status from an earlier attempt would hide that this one was stopped
            (out / report.STATUS_FILE).unlink(missing_ok=True)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        multirun = config.hydra.mode == RunMode.MULTIRUN
        if self.skipped:
            self._summarize(Path(config.hydra.sweep.dir), announce=False)
            return
        out = Path(config.hydra.runtime.output_dir)
        completed = job_return.status == JobStatus.COMPLETED
        choices = config.hydra.runtime.choices
        status = {
            "status": "completed" if completed else "failed",
            "overrides": list(job_return.overrides or []),
            "latent": _select(config, "latent"),
            "model": choices.get("model"),
            "transform": choices.get("transform"),
            "wall_s": time.time() - self.started if self.started else None,
        }
        if not completed:
            err = job_return._return_value
            status["error"] = one_line(err)
            if multirun:  # a bug's traceback goes to the job's train.log
                bug = None if isinstance(err, AeLabError) else err
                log.error("ae_lab: job %s failed: %s", out.name, status["error"], exc_info=bug)
        report.atomic_write(out / report.STATUS_FILE, json.dumps(status, indent=2) + "\n")
        if multirun:
            self._summarize(Path(config.hydra.sweep.dir))

    def on_run_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        """A single run that failed with an ``AeLabError`` ends with its message alone; one that
        a config error stopped leaves no folder behind."""
        err = job_return._return_value
        failed = job_return.status == JobStatus.FAILED
        if failed:
            run_dir.remove_after_config_error(config, self.made, err)
        if failed and isinstance(err, AeLabError) and not full_error_wanted():
            exit_with(str(err), err.exit_code)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._summarize(Path(config.hydra.sweep.dir), announce=not self.skipped)

    def _summarize(self, sweep_dir: Path, announce: bool = True) -> None:
        """``announce``: log where it went; not for a skipped job, whose train.log the log is."""
        try:
            rows = report.summarize(sweep_dir, self.reference)
        except Exception:  # a summary must never turn a finished job into a failed sweep
            log.exception("could not summarise the sweep in %s", sweep_dir)
            return
        if announce:
            log.info("sweep summary (%d jobs) written to %s", len(rows), sweep_dir / "summary.md")
