"""A Hydra callback that keeps each job's record and the sweep's summary current.

Every job writes ``job.json`` (``ae_lab.reporting.records``) as it starts, with its resolved
configuration and that configuration's hash, and completes it as it ends. A job that fails (a
setting out of range, a NaN loss, a crash) raises; Hydra's launchers record it as failed, run the
remaining jobs, and only then raise the first failure, so the sweep exits non-zero and
``on_multirun_end`` never runs. Each job therefore rebuilds the sweep summary in ``on_job_end``;
``on_multirun_end`` rebuilds it once more. A job whose record still says running was stopped
(Ctrl-C, SIGTERM, a kill) or is running, and shows as incomplete.

Running the same sweep again with ``hydra.sweep.dir=<that sweep>`` continues it. A job whose
record says completed with the same configuration is skipped with its files untouched
(``completed_metrics``). A job whose folder holds a run of another configuration (a changed
default, an edited preset) has that run set aside to ``<job>.superseded-<n>`` and runs afresh; any
other job resumes from its ``last.ckpt`` (``ae_lab.run.resume``) or starts afresh. A sweep folder is
run by one sweep at a time, for as long as its driver or any of its jobs runs
(``ae_lab.sweeps.sweep_lock``).

A single run continued with ``ckpt_path=last`` is checked the same way, by
``ae_lab.run.single_run``.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ae_lab.reporting import records, report
from ae_lab.reporting.identity import changes, resolved_identity
from ae_lab.run import console, run_dir
from ae_lab.run.errors import AeLabError, one_line
from ae_lab.sweeps.sweep_lock import SWEEP_LOCK  # noqa: F401 - where it was named before

log = logging.getLogger(__name__)


def _select(config: DictConfig, key: str) -> Any:
    try:
        return OmegaConf.select(config, key, throw_on_missing=False)
    except Exception:  # noqa: BLE001 - an unresolvable value is just not recorded
        return None


def pruned(error: BaseException) -> bool:
    """Whether a job ended because an Optuna search's pruner stopped it
    (``ae_lab.sweeps.optuna_pruning``). Optuna is loaded by then wherever it can be."""
    optuna = sys.modules.get("optuna")
    return optuna is not None and isinstance(error, optuna.TrialPruned)


def completed_metrics() -> dict[str, float] | None:
    """This sweep job's metrics when an earlier run of the same sweep completed it with the same
    configuration, else None (``SweepSummary.on_job_start`` has replaced any other record)."""
    if not records.in_sweep():
        return None
    job_dir = Path(HydraConfig.get().runtime.output_dir)
    record = records.read(job_dir)
    if record is None or record.status != records.COMPLETED:
        return None
    return records.read_metrics(job_dir)


class SweepSummary(Callback):
    """``job.json`` in every job dir; ``summary.csv``, ``summary.md`` and ``mse_vs_latent.png``
    in the sweep dir, with the published figures the sweep's config names (``report.reference``:
    ``metric``, ``value``, ``what``, ``job``) beside this sweep's. A single run's start and end
    are ``ae_lab.run.single_run``'s."""

    def __init__(self) -> None:
        self.record: records.JobRecord | None = None
        self.skipped = False

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        run_dir.make(config.hydra.sweep.dir, "hydra.sweep.dir")

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        out = Path(config.hydra.runtime.output_dir)
        multirun = config.hydra.mode == RunMode.MULTIRUN
        self.skipped, self.record = False, None
        if not records.rank_zero():
            return
        identity = resolved_identity(config, out)
        ident = identity[0] if identity else None
        earlier = records.read(out)
        hydra_dir = config.hydra.get("output_subdir") or ""
        if multirun and earlier and earlier.status == records.COMPLETED and earlier.matches(ident):
            self.skipped = True  # said on the console by ae_lab.sweeps.console, not logged
            return
        if multirun and identity and self._superseded(out, earlier, identity, hydra_dir):
            earlier = None
        ckpt_path = config.get("ckpt_path")
        continuing = (multirun and ckpt_path is None) or ckpt_path == "last"
        choices = config.hydra.runtime.choices
        self.record = records.begin(
            out,
            identity,
            earlier if continuing and earlier and earlier.matches(ident) else None,
            skip=[hydra_dir],
            overrides=list(config.hydra.overrides.task),
            latent=_select(config, "latent"),
            model=choices.get("model"),
            transform=choices.get("transform"),
        )

    @staticmethod
    def _superseded(
        out: Path,
        earlier: records.JobRecord | None,
        identity: tuple[str, dict[str, Any]],
        hydra_dir: str,
    ) -> bool:
        """Sets aside what a sweep job's folder holds from a run of another configuration (or of
        an unknown one: results without a record), so that the job neither resumes from nor
        reports that run. Returns whether it did."""
        logs = records.open_log_files()
        ours = {hydra_dir} | {p.name for p in logs if p.parent == out}
        if earlier is not None:
            if earlier.matches(identity[0]):
                return False
            why = (
                f"its configuration changed ({changes(earlier.config, identity[1])})"
                if earlier.identity
                else "its record, of an earlier ae_lab, does not say which configuration it ran"
            )
        elif any(p.name not in ours for p in out.iterdir()):
            why = "it holds files without a record of their configuration"
        else:
            return False
        aside = records.set_aside(out, keep=[hydra_dir], logs=logs)
        log.info("%s: %s; the earlier run is set aside in %s", out.name, why, aside.name)
        return True

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        multirun = config.hydra.mode == RunMode.MULTIRUN
        if not records.rank_zero():
            return
        if self.skipped:
            self._summarize(config, announce=False)
            return
        if self.record is None:  # another process of a multi-process run keeps the record
            return
        out = Path(config.hydra.runtime.output_dir)
        completed = job_return.status == JobStatus.COMPLETED
        error, stopped = None, False
        if not completed:
            err = job_return._return_value
            error, stopped = one_line(err), pruned(err)
            if stopped:
                log.info("job %s pruned: %s", out.name, error)
            elif multirun:  # a bug's traceback goes to the job's train.log
                bug = None if isinstance(err, AeLabError) else err
                log.error("ae_lab: job %s failed: %s", out.name, error, exc_info=bug)
        records.finish(out, self.record, completed, error, pruned=stopped)
        if multirun:
            self._summarize(config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._summarize(config, announce=not self.skipped, final=True)

    def _summarize(self, config: DictConfig, announce: bool = True, final: bool = False) -> None:
        """``announce``: log where it went; not for a skipped job, whose train.log the log is.
        ``final``: the sweep has ended (a failed job ends it with its error instead, after the
        line of the last job's summary)."""
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            found = _select(config, "report.reference")
            reference = OmegaConf.to_container(found, resolve=True) if found else []
            rows = report.summarize(sweep_dir, reference)
        except Exception:  # a summary must never turn a finished job into a failed sweep
            log.exception("could not summarise the sweep in %s", sweep_dir)
            return
        if announce:
            views = console.sweep_views(_select(config, "logger"), sweep_dir) if final else []
            log.info(summary_line(rows, sweep_dir, final, views))


def summary_line(
    rows: list[dict[str, Any]], sweep_dir: Path, final: bool, views: Sequence[str] = ()
) -> str:
    """``sweep finished: 3 completed, 1 failed; summary ...``: how many jobs did what, and where
    to look (at the end of the sweep, also ``views``: how to open it in each of its loggers,
    ``ae_lab.run.console.sweep_views``)."""
    counts = Counter(str(r.get("status")) for r in rows)
    parts = [
        f"{counts.pop(records.COMPLETED, 0)} completed",
        f"{counts.pop(records.FAILED, 0)} failed",
    ]
    parts += [f"{n} {status}" for status, n in sorted(counts.items())]
    what = "sweep finished" if final else "sweep summary updated"
    line = f"{what}: {', '.join(parts)}; summary in {sweep_dir / 'summary.md'}"
    return "; ".join([line, *views]) if final else line
