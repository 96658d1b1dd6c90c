"""A Hydra callback that keeps the sweep's summary current, in the process that drives the sweep.

Each job's record (``job.json``) and its protections are the job's own (``ae_lab.core.lifecycle``,
called by the task function), so that they hold whatever Hydra does with a callback that fails. A
job that fails (a setting out of range, a NaN loss, a crash) raises; Hydra's launchers record it
as failed, run the remaining jobs, and only then raise the first failure, so the sweep exits
non-zero and ``on_multirun_end`` never runs. Each job therefore rebuilds the sweep summary in
``on_job_end``; ``on_multirun_end`` rebuilds it once more. The tables are rewritten after every
job; the figure, a third of a second of matplotlib, after the first job, then whenever
``REDRAW_EVERY_S`` have passed since it was last drawn, after every job once a job has failed (the
sweep then ends without ``on_multirun_end``), and at the end: a sweep of many short jobs (a smoke
run, the tests) does not spend its time redrawing, and a sweep of long jobs redraws after each.
A job whose record still says running was stopped (Ctrl-C, SIGTERM, a kill) or is running, and
shows as incomplete.

Running the same sweep again with ``hydra.sweep.dir=<that sweep>`` continues it: completed jobs
are skipped, the others continue or run afresh (``ae_lab.core.lifecycle``). A sweep folder is run
by one sweep at a time, for as long as its driver or any of its jobs runs
(``ae_lab.sweeps.sweep_lock``).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ae_lab.core import lifecycle, records, run_dir
from ae_lab.core.values import select_or_none
from ae_lab.reporting import report, run_end
from ae_lab.sweeps.sweep_lock import SWEEP_LOCK  # noqa: F401 - where it was named before

log = logging.getLogger(__name__)
# the most a running sweep's figure lags behind its tables, in seconds
REDRAW_EVERY_S = 30.0


class SweepSummary(Callback):
    """``summary.csv``, ``summary.md`` and ``mse_vs_latent.png``
    in the sweep dir, with the published figures the sweep's config names (``report.reference``:
    ``metric``, ``value``, ``what``, ``job``) beside this sweep's. A single run's start and end
    are ``ae_lab.run.single_run``'s."""

    def __init__(self) -> None:
        self._drawn_at: float | None = None  # when this process last drew the figure

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        run_dir.make(config.hydra.sweep.dir, "hydra.sweep.dir")

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode == RunMode.MULTIRUN and records.rank_zero():
            # not logged for a skipped job: its log is the earlier run's, left as it was
            self._summarize(config, announce=not lifecycle.skipped())

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._summarize(config, final=True)

    def _summarize(self, config: DictConfig, announce: bool = True, final: bool = False) -> None:
        """``announce``: log where it went; not for a skipped job, whose train.log the log is.
        ``final``: the sweep has ended (a failed job ends it with its error instead, after the
        line of the last job's summary)."""
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            found = select_or_none(config, "report.reference")
            reference = OmegaConf.to_container(found, resolve=True) if found else []
            redraw = None if final else self._due
            rows = report.summarize(sweep_dir, reference, redraw=redraw)
        except Exception:  # a summary must never turn a finished job into a failed sweep
            log.exception("could not summarise the sweep in %s", sweep_dir)
            return
        if announce:
            loggers = select_or_none(config, "logger")
            views = run_end.sweep_views(loggers, sweep_dir) if final else []
            log.info(summary_line(rows, sweep_dir, final, views))

    def _due(self, rows: list[dict[str, Any]]) -> bool:
        """Whether a job's end redraws the figure (see the module's docstring)."""
        now = time.monotonic()
        failed = any(r.get("status") == records.FAILED for r in rows)
        if failed or self._drawn_at is None or now - self._drawn_at >= REDRAW_EVERY_S:
            self._drawn_at = now
            return True
        return False


def summary_line(
    rows: list[dict[str, Any]], sweep_dir: Path, final: bool, views: Sequence[str] = ()
) -> str:
    """``sweep finished: 3 completed, 1 failed; summary ...``: how many jobs did what, and where
    to look (at the end of the sweep, also ``views``: how to open it in each of its loggers,
    ``ae_lab.reporting.run_end.sweep_views``)."""
    counts = Counter(str(r.get("status")) for r in rows)
    parts = [
        f"{counts.pop(records.COMPLETED, 0)} completed",
        f"{counts.pop(records.FAILED, 0)} failed",
    ]
    parts += [f"{n} {status}" for status, n in sorted(counts.items())]
    what = "sweep finished" if final else "sweep summary updated"
    line = f"{what}: {', '.join(parts)}; summary in {sweep_dir / 'summary.md'}"
    return "; ".join([line, *views]) if final else line
