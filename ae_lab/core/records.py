"""A run's records: ``job.json`` (what the job is and how it went) and ``metrics.json`` (its
final metrics). This module owns their names, their schema and how they are written.

A job's identity (``ae_lab.core.identity``) is recorded in ``job.json`` when the job starts
(status ``running``), with its resolved configuration, and completed when it ends; the phases in
between are written by ``ae_lab.core.attempts`` as ``ae_lab.core.lifecycle`` moves a job through
them. A ``job.json`` that is damaged or holds values of the wrong kind reads as no record
(``inspect`` says why), so that no reader trusts or trips over it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from ae_lab.core.errors import disk_full

JOB_FILE = "job.json"
METRICS_FILE = "metrics.json"
RUNNING, COMPLETED, FAILED = "running", "completed", "failed"
# stopped early by an Optuna search's pruner (ae_lab.sweeps.optuna_pruning): not a failure
PRUNED = "pruned"
STATUSES = (RUNNING, COMPLETED, FAILED, PRUNED)
SUPERSEDED = "superseded"


def load_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; ``{}`` when it is missing, damaged or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def atomic_write(path: Path, text: str) -> None:
    """Readers (a summary rebuilt by a parallel job, a re-run) see a whole file or the old one,
    never half of one, whatever kills the writer."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if (full := disk_full(err, path)) is not None:
            raise full from None
        raise


@dataclass
class Attempt:
    """One start of a job. ``wall_s`` is None while it runs; an attempt that was killed gets it
    when the job is next started: from its start to the last file it wrote."""

    started: float
    wall_s: float | None = None


@dataclass
class Fit:
    """Training finished and the test not yet recorded: what a continued job tests and keeps."""

    metrics: dict[str, float]
    checkpoint: str  # the checkpoint the test loads, relative to the run dir


def _parse(kind: type) -> Any:
    """``kind`` from its JSON object; None for anything else (a record edited by hand)."""

    def parse(data: Any) -> Any:
        try:
            return kind(**data) if isinstance(data, dict) else None
        except TypeError:
            return None

    return parse


@dataclass
class JobRecord:
    """The schema of ``job.json``."""

    status: str  # running | completed | failed | pruned
    identity: str | None = None  # hash of ``config``; None in records of older versions
    overrides: list[str] = field(default_factory=list)
    latent: int | None = None  # the model's bottleneck size; None: it has none (a classifier)
    model: str | None = None
    transform: str | None = None
    wall_s: float | None = None  # every attempt's time, summed
    attempts: list[Attempt] = field(default_factory=list)
    error: str | None = None
    fit: Fit | None = None
    config: dict[str, Any] | None = None  # the resolved configuration ``identity`` hashes
    # a completed job's final metrics, from which a damaged or missing metrics.json is rewritten
    metrics: dict[str, float] | None = None
    # the MLflow run the job logs to ({"run_id", "tracking_uri"}), which a continued job goes on
    # logging to and a job started afresh marks as killed
    mlflow: dict[str, str] | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobRecord | None:
        """The record in ``data``; None unless every value has its kind (``problem``). Unknown
        keys are ignored, so records of older and newer versions still read; an attempt or a fit
        that does not read is dropped (the job then re-times or re-trains, nothing worse)."""
        if problem(data) is not None:
            return None
        names = {f.name for f in dataclasses.fields(cls)}
        record = cls(**{k: v for k, v in data.items() if k in names})
        record.attempts = [a for a in map(_parse(Attempt), data.get("attempts") or []) if a]
        record.fit = _parse(Fit)(data.get("fit"))
        return record

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"

    def earlier_wall_s(self) -> float:
        """Time of the attempts before the one now running."""
        return sum(a.wall_s or 0.0 for a in self.attempts[:-1])

    def matches(self, identity: str | None) -> bool:
        return identity is not None and self.identity == identity


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numbers(value: Any) -> bool:
    return isinstance(value, dict) and all(_number(v) for v in value.values())


def _optional(check: Any) -> Any:
    return lambda value: value is None or check(value)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


# what each key of job.json must hold for the record to be trusted
_KINDS: dict[str, Any] = {
    "identity": _optional(lambda v: isinstance(v, str)),
    "overrides": _strings,
    # the model's bottleneck, or the config's value as given when the job failed before a
    # model was built (latent=abc)
    "latent": lambda v: not isinstance(v, (dict, list)),
    "model": _optional(lambda v: isinstance(v, str)),
    "transform": _optional(lambda v: isinstance(v, str)),
    "wall_s": _optional(_number),
    "attempts": _optional(lambda v: isinstance(v, list)),
    "error": _optional(lambda v: isinstance(v, str)),
    "config": _optional(lambda v: isinstance(v, dict)),
    "metrics": _optional(_numbers),
    "mlflow": _optional(lambda v: isinstance(v, dict)),
}


def problem(data: Mapping[str, Any]) -> str | None:
    """Why ``data`` is no trustworthy record (a status ae_lab does not write, a value of the wrong
    kind), in a few words; None when it is one."""
    status = data.get("status")
    if status not in STATUSES:
        return f"its status is {status!r}, not one of {', '.join(STATUSES)}"
    odd = sorted(k for k, ok in _KINDS.items() if k in data and not ok(data[k]))
    return f"its {', '.join(odd)} {'has' if len(odd) == 1 else 'have'} odd values" if odd else None


def inspect(run_dir: Path) -> tuple[JobRecord | None, str | None]:
    """The record in ``run_dir`` and, when a ``job.json`` is there but cannot be trusted (damaged,
    odd values), why not."""
    path = run_dir / JOB_FILE
    if not path.exists():
        return None, None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None, "it is damaged (not JSON)"
    if not isinstance(data, dict):
        return None, "it is damaged (not a JSON object)"
    why = problem(data)
    return (None, why) if why else (JobRecord.from_json(data), None)


def read(run_dir: Path) -> JobRecord | None:
    return JobRecord.from_json(load_json(run_dir / JOB_FILE))


def write(run_dir: Path, record: JobRecord) -> None:
    atomic_write(run_dir / JOB_FILE, record.to_json())


def read_metrics(run_dir: Path) -> dict[str, Any]:
    return load_json(run_dir / METRICS_FILE)


def whole_metrics(run_dir: Path) -> dict[str, float] | None:
    """``metrics.json`` when it is there, whole and every value a number; else None."""
    path = run_dir / METRICS_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data and _numbers(data) else None


def write_metrics(run_dir: Path, metrics: Mapping[str, float]) -> Path:
    path = run_dir / METRICS_FILE
    atomic_write(path, json.dumps(dict(metrics), indent=2, sort_keys=True) + "\n")
    return path


def in_sweep() -> bool:
    """Whether this process runs a job of a sweep (``-m``), whose run dir a re-run continues."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def rank_zero() -> bool:
    """False in the extra processes of a multi-process run, which share rank 0's run dir and
    leave its records to it. Lightning's own rank test (``lightning_fabric``'s ``_get_rank``,
    the same variables) imports torch, which the records are written without."""
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if os.environ.get(key) is not None:
            return int(os.environ[key]) == 0
    return True


def set_aside(run_dir: Path, keep: Iterable[str], logs: Iterable[Path] = ()) -> Path:
    """Moves a run dir's contents to ``<run dir>.superseded-<n>`` and returns that folder.

    ``keep``: entries that belong to the attempt starting now (Hydra's ``.hydra``, rewritten
    already). ``logs``: files this process has open for writing; they are copied and emptied
    rather than moved, so that the new attempt keeps logging to its own run dir.
    """
    keep, logs = set(keep), {Path(p).resolve() for p in logs}
    n = 1
    while True:  # a name taken by anything, a dangling link included, is skipped
        aside = run_dir.with_name(f"{run_dir.name}.{SUPERSEDED}-{n}")
        try:
            aside.mkdir()
            break
        except FileExistsError:
            n += 1
    for entry in sorted(run_dir.iterdir()):
        if entry.name in keep:
            continue
        if entry.resolve() in logs:
            shutil.copy2(entry, aside / entry.name)
            os.truncate(entry, 0)
        else:
            entry.rename(aside / entry.name)
    return aside


def open_log_files() -> list[Path]:
    """Files the logging handlers of this process write to (Hydra's ``<job>.log``)."""
    handlers = logging.getLogger().handlers
    return [Path(h.baseFilename) for h in handlers if isinstance(h, logging.FileHandler)]
