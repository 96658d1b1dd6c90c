"""What a run finds in its folder before it writes anything, and what it does about it
(``decide``), for ``ae_lab.core.lifecycle.run``:

- a run whose folder holds a completed run of the same configuration: a sweep job is skipped, a
  single run continued (``ckpt_path=last``, or that folder's own ``last.ckpt``) says so and
  returns its metrics; a new training into it is refused in one line (exit 2), the folder left as
  it was. "Completed" means every phase is on disk: a record that says completed without whole
  metrics is repaired from ``job.json``, or the run continues, with one log line saying which;
- a ``job.json`` that is damaged or odd (``records.problem``) counts as no record, with one log
  line; a sweep job then sets the folder's contents aside, as it does those of a run of another
  configuration (``<job>.superseded-<n>``), and runs afresh.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from ae_lab.core import records
from ae_lab.core.errors import AeLabError, one_line
from ae_lab.core.identity import changes, resolved_identity

log = logging.getLogger(__name__)
LAST_CKPT = Path("checkpoints") / "last.ckpt"  # checkpoints.LastCheckpoint's file, in a run dir


class CompletedRunError(AeLabError):
    """A new training into the folder of a completed run, which would rewrite it."""

    exit_code = 2


def continues_own(ckpt_path: Any, out: Path) -> bool:
    """Whether ``ckpt_path`` continues the run in ``out``: ``last``, or that folder's own
    ``last.ckpt`` named as a file."""
    if ckpt_path == "last":
        return True
    if not isinstance(ckpt_path, str):
        return False
    own = out / LAST_CKPT
    given = Path(ckpt_path).expanduser()
    try:
        return given.is_file() and own.is_file() and os.path.samefile(given, own)
    except OSError:
        return False


def earlier_record(out: Path) -> records.JobRecord | None:
    """The record in ``out``; one log line when a ``job.json`` there cannot be trusted."""
    record, why = records.inspect(out)
    if why is not None:
        log.warning(
            "%s: its %s cannot be trusted (%s); it counts as none", out, records.JOB_FILE, why
        )
    return record


def completed_metrics(
    out: Path, identity: str | None, announce: bool = True
) -> dict[str, float] | None:
    """The metrics of a run in ``out`` that completed every phase, with identity ``identity``
    (None: any); None when there is none. A completed record whose ``metrics.json`` is missing
    or damaged is repaired from the metrics ``job.json`` keeps, or does not count as completed;
    ``announce``: one log line says which."""
    record = records.read(out)
    if record is None or record.status != records.COMPLETED:
        return None
    if identity is not None and not record.matches(identity):
        return None
    metrics = records.whole_metrics(out)
    if metrics is not None:
        return metrics
    if not announce:
        return record.metrics
    if record.metrics:
        records.write_metrics(out, record.metrics)
        log.warning(
            "%s: its %s was missing or damaged; rewritten from %s",
            out,
            records.METRICS_FILE,
            records.JOB_FILE,
        )
        return dict(record.metrics)
    log.warning(
        "%s: its record says completed but its %s is missing or damaged; the run continues to "
        "write it",
        out,
        records.METRICS_FILE,
    )
    return None


def decide(
    cfg: DictConfig,
    out: Path,
    identity: tuple[str, dict[str, Any]] | None,
    multirun: bool,
) -> dict[str, float] | records.JobRecord | None:
    """What to do before anything is written: the metrics of a completed run to return as they
    are, or the record the attempt starting now continues (None: it starts afresh). Raises
    ``CompletedRunError`` for a new training into a completed run's folder."""
    ident = identity[0] if identity else None
    ckpt_path = cfg.get("ckpt_path")
    earlier = earlier_record(out)
    own = continues_own(ckpt_path, out)
    if multirun:
        metrics = completed_metrics(out, ident)
        if metrics is not None:  # said by the sweep's console (ae_lab.sweeps.console), not
            return metrics  # logged: the job's log stays as it was
        if identity is not None and set_aside_another(out, earlier, identity):
            earlier = None
        continuing = ckpt_path is None or own
        return earlier if continuing and earlier is not None and earlier.matches(ident) else None
    if earlier is not None and earlier.status == records.COMPLETED:
        if own and earlier.matches(ident):
            metrics = completed_metrics(out, ident)
            if metrics is not None:
                print(
                    f"ae_lab: {out} is a completed run, nothing to resume; its metrics are in "
                    f"{out / records.METRICS_FILE}",
                    flush=True,
                )
                return metrics
            return earlier  # completed without its metrics: continued to write them
        if not own:
            raise CompletedRunError(
                f"hydra.run.dir={out} holds a completed run, which a new training would "
                "overwrite. Give a new hydra.run.dir (or none, for a folder of its own); "
                "ckpt_path=last shows its metrics"
            )
    if own and earlier is not None and identity is not None and not earlier.matches(ident):
        what = "a completed run" if earlier.status == records.COMPLETED else "a run"
        raise CompletedRunError(
            f"ckpt_path=last: {out} holds {what} of another configuration "
            f"({changes(earlier.config, identity[1])}). Continue it with the settings it ran "
            "with, or give a new hydra.run.dir"
        )
    return earlier if own else None


def completed_already(cfg: DictConfig, out: Path) -> bool:
    """Whether ``run`` will return the metrics of a completed sweep job in ``out`` without work;
    read only, for what a sweep prints before its job starts."""
    identity = resolved_identity(cfg, out)
    return completed_metrics(out, identity[0] if identity else None, announce=False) is not None


def set_aside_another(
    out: Path, earlier: records.JobRecord | None, identity: tuple[str, dict[str, Any]]
) -> bool:
    """Sets aside what a sweep job's folder holds from a run of another configuration (or of an
    unknown one: results without a trustworthy record), so that the job neither resumes from nor
    reports that run. Returns whether it did."""
    hydra_files = hydra_dir()
    logs = records.open_log_files()
    ours = {hydra_files} | {p.name for p in logs if p.parent == out}
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
    aside = records.set_aside(out, keep=[hydra_files], logs=logs)
    log.info("%s: %s; the earlier run is set aside in %s", out.name, why, aside.name)
    mark_killed(earlier)
    return True


def hydra_dir() -> str:
    """The folder Hydra writes the job's config into, inside the run folder (``.hydra``)."""
    return str(HydraConfig.get().get("output_subdir") or "")


def mark_killed(record: records.JobRecord | None) -> None:
    """Ends the MLflow run of an attempt that was stopped and is not continued, so that no run
    stays RUNNING beside the new one."""
    found = (record.mlflow or {}) if record is not None and record.status != "completed" else {}
    run_id, uri = found.get("run_id"), found.get("tracking_uri")
    if not isinstance(run_id, str):
        return
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri or None)
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, "KILLED")
    except Exception as err:  # noqa: BLE001 - the old run's status is not worth a failed run
        log.warning("could not mark MLflow run %s as killed: %s", run_id, one_line(err))
