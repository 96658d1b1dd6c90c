"""How a job's record (``job.json``, ``ae_lab.core.records``) moves through its attempts: one
begun (timing the killed attempt it continues), its fit and its model's bottleneck kept, its end
written; and the fit an earlier attempt left for this one to test. Who calls them when is
``ae_lab.core.lifecycle``'s."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ae_lab.core.records import (
    COMPLETED,
    FAILED,
    PRUNED,
    RUNNING,
    Attempt,
    Fit,
    JobRecord,
    read,
    write,
)


def last_activity(run_dir: Path, skip: Iterable[str] = ()) -> float | None:
    """When anything in ``run_dir`` (outside the entries in ``skip``) was last written."""
    skip = set(skip)
    times = [
        p.stat().st_mtime
        for p in run_dir.rglob("*")
        if p.is_file() and not skip & set(p.relative_to(run_dir).parts)
    ]
    return max(times, default=None)


def begin(
    run_dir: Path,
    identity_and_config: tuple[str, dict[str, Any]] | None,
    earlier: JobRecord | None,
    skip: Iterable[str] = (),
    **info: Any,
) -> JobRecord:
    """Writes the record of an attempt that starts now. ``earlier``: the record of the run this
    attempt continues, whose attempts (a killed one timed by ``last_activity``, outside ``skip``)
    and finished fit it carries on."""
    attempts: list[Attempt] = []
    fit = None
    if earlier is not None:
        attempts, fit = list(earlier.attempts), earlier.fit
        if attempts and attempts[-1].wall_s is None:
            end = last_activity(run_dir, skip) or attempts[-1].started
            attempts[-1].wall_s = max(0.0, end - attempts[-1].started)
    attempts.append(Attempt(started=time.time()))
    ident, config = identity_and_config or (None, None)
    mlflow = earlier.mlflow if earlier is not None else None
    record = JobRecord(
        RUNNING, ident, attempts=attempts, fit=fit, config=config, mlflow=mlflow, **info
    )
    write(run_dir, record)
    return record


def finish(
    run_dir: Path,
    record: JobRecord,
    completed: bool,
    error: str | None = None,
    metrics: Mapping[str, float] | None = None,
    pruned: bool = False,
) -> JobRecord:
    """Ends the attempt ``record`` began (re-read: the run may have added its fit) and writes the
    outcome (``pruned``: a job that did not complete because its search's pruner stopped it); a
    completed job keeps its ``metrics`` (those of its ``metrics.json``) and its fit."""
    record = read(run_dir) or record
    if record.attempts and record.attempts[-1].wall_s is None:
        record.attempts[-1].wall_s = time.time() - record.attempts[-1].started
    record.wall_s = sum(a.wall_s or 0.0 for a in record.attempts)
    record.status = COMPLETED if completed else PRUNED if pruned else FAILED
    record.error = error
    if metrics is not None:
        record.metrics = {k: float(v) for k, v in metrics.items()}
    write(run_dir, record)
    return record


def record_fit(run_dir: Path, metrics: Mapping[str, float], checkpoint: Path) -> None:
    """Keeps what training logged and the checkpoint to test, so that a job stopped before its
    test ends, when continued, with every metric without training again."""
    record = read(run_dir)
    if record is None:
        return
    rel = os.path.relpath(checkpoint, run_dir)
    record.fit = Fit({k: float(v) for k, v in metrics.items()}, rel)
    write(run_dir, record)


def record_latent(run_dir: Path, latent: int | None) -> None:
    """The bottleneck of the model the run built (None: it has none), which the config's
    ``latent`` the record began with only suggests."""
    record = read(run_dir)
    if record is not None and record.latent != latent:
        record.latent = latent
        write(run_dir, record)


def fit_to_test(run_dir: Path) -> tuple[dict[str, float], Path] | None:
    """The recorded fit of the attempt now running (carried from an earlier attempt) and its
    checkpoint, when that checkpoint is still there."""
    record = read(run_dir)
    if record is None or record.fit is None:
        return None
    checkpoint = run_dir / record.fit.checkpoint
    return (dict(record.fit.metrics), checkpoint) if checkpoint.is_file() else None
