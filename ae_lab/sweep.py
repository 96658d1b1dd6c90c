"""A Hydra callback that records each job's outcome and keeps the sweep's summary current.

Hydra's basic launcher catches a job's exception, runs the remaining jobs, and only then raises,
so ``on_multirun_end`` never runs for a sweep with a failed job. Each job therefore writes its
status (``job.json``) in ``on_job_end`` and rebuilds the sweep summary; ``on_multirun_end``
rebuilds it once more. A failed job then shows as failed, not missing.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from ae_lab import report

log = logging.getLogger(__name__)


def _select(config: DictConfig, key: str) -> Any:
    try:
        return OmegaConf.select(config, key, throw_on_missing=False)
    except Exception:  # noqa: BLE001 - an unresolvable value is just not recorded
        return None


class SweepSummary(Callback):
    """``job.json`` in every job dir; ``summary.csv``, ``summary.md`` and ``mse_vs_latent.png``
    in the sweep dir. ``reference`` lists published figures (``metric``, ``value``, ``what``)
    that ``summary.md`` shows beside this sweep's."""

    def __init__(self, reference: list[dict[str, Any]] | None = None) -> None:
        self.reference = [dict(r) for r in reference or []]
        self.started: float | None = None

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started = time.time()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
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
            status["error"] = f"{type(err).__name__}: {err}"
        (out / report.STATUS_FILE).write_text(json.dumps(status, indent=2) + "\n")
        if config.hydra.mode == RunMode.MULTIRUN:
            self._summarize(Path(config.hydra.sweep.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._summarize(Path(config.hydra.sweep.dir))

    def _summarize(self, sweep_dir: Path) -> None:
        try:
            rows = report.summarize(sweep_dir, self.reference)
        except Exception:  # a summary must never turn a finished job into a failed sweep
            log.exception("could not summarise the sweep in %s", sweep_dir)
            return
        log.info("sweep summary (%d jobs) written to %s", len(rows), sweep_dir / "summary.md")
