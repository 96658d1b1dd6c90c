"""One owner for a run's life, a single run's and a sweep job's alike: ``job.json`` from the
decision whether to run at all to the run's last word.

A run moves through ``started -> fit recorded -> tested -> completed`` (or ``failed``):

- *started*: ``job.json`` says running, with the run's identity (``ae_lab.core.identity``);
- *fit recorded*: training ended and its metrics and the checkpoint to test are in ``job.json``
  (``Life.record_fit``); the checkpoint written at the end of the last epoch carries the same
  metrics (``ae_lab.run.resume.ExactResume``), so no kill between the two loses them;
- *tested*: ``metrics.json`` holds every metric;
- *completed*: ``job.json`` says so and keeps the metrics too, from which a damaged
  ``metrics.json`` is rewritten.

``run`` is called by the task functions themselves (``ae_lab.run.train.train``,
``ae_lab.run.evaluate``), never by a Hydra callback, which Hydra lets fail with a warning: a run
started in any way has these protections. Before anything is written it decides:

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

import contextlib
import errno
import fcntl
import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from ae_lab.core import records
from ae_lab.core.errors import AeLabError, one_line
from ae_lab.core.identity import changes, resolved_identity

log = logging.getLogger(__name__)
LAST_CKPT = Path("checkpoints") / "last.ckpt"  # checkpoints.LastCheckpoint's file, in a run dir


_current: Life | None = None  # the run this process is living now (set by ``run``)
_skipped = False  # whether the last run of this process was completed already


def skipped() -> bool:
    """Whether the last run in this process returned a completed run's metrics without work."""
    return _skipped


def current() -> Life | None:
    """The run ``run`` is running in this process now, for what builds it (``train.build``)."""
    return _current


class RunInUseError(AeLabError):
    """Another live process runs in this folder (the same ``hydra.run.dir`` given twice)."""


class CompletedRunError(AeLabError):
    """A new training into the folder of a completed run, which would rewrite it."""

    exit_code = 2


@dataclass
class Life:
    """The run now living in ``out``; ``record`` is None in the processes of a multi-process
    run other than the first, which read the records and leave them to it."""

    out: Path
    record: records.JobRecord | None
    multirun: bool

    @property
    def writes(self) -> bool:
        return self.record is not None

    def fitted(self) -> tuple[dict[str, float], Path] | None:
        """The fit an earlier attempt recorded and its checkpoint, when it is still there: the
        run then only tests."""
        return records.fit_to_test(self.out)

    def earlier_wall_s(self) -> float:
        """The time of the earlier attempts of this run (killed or stopped ones)."""
        return self.record.earlier_wall_s() if self.record is not None else 0.0

    def mlflow_run(self) -> str | None:
        """The MLflow run this run continues, if it logged to one before."""
        found = (self.record.mlflow or {}) if self.record is not None else {}
        return found.get("run_id") if isinstance(found.get("run_id"), str) else None

    def record_loggers(self, loggers: list[Any]) -> None:
        """Keeps the MLflow run the run logs to, so that a continued run goes on in it."""
        from lightning.pytorch.loggers import MLFlowLogger

        found = next((lg for lg in loggers if isinstance(lg, MLFlowLogger)), None)
        if not self.writes or found is None or found.run_id is None:
            return
        record = records.read(self.out) or self.record
        record.mlflow = {"run_id": found.run_id, "tracking_uri": found._tracking_uri or ""}
        records.write(self.out, record)
        self.record = record

    def record_latent(self, latent: int | None) -> None:
        if self.writes:
            records.record_latent(self.out, latent)

    def record_fit(self, metrics: dict[str, float], checkpoint: Path) -> None:
        """Phase *fit recorded*."""
        if self.writes:
            records.record_fit(self.out, metrics, checkpoint)

    def complete(self, metrics: dict[str, float]) -> None:
        """Phases *tested* and *completed*: ``metrics.json``, then the record that says so."""
        if self.writes:
            records.write_metrics(self.out, metrics)
            self.record = records.finish(self.out, self.record, True, metrics=metrics)

    def fail(self, err: BaseException) -> None:
        """Phase *failed*, or *pruned* when an Optuna search's pruner stopped the run; a sweep
        job's bug keeps its traceback in the job's log."""
        if not self.writes:
            return
        stopped = pruned(err)
        if stopped:
            log.info("job %s pruned: %s", self.out.name, one_line(err))
        elif self.multirun:
            bug = None if isinstance(err, AeLabError) else err
            log.error("ae_lab: job %s failed: %s", self.out.name, one_line(err), exc_info=bug)
        self.record = records.finish(self.out, self.record, False, one_line(err), pruned=stopped)


def pruned(error: BaseException) -> bool:
    """Whether a run ended because an Optuna search's pruner stopped it
    (``ae_lab.sweeps.optuna_pruning``). Optuna is loaded by then wherever it can be."""
    optuna = sys.modules.get("optuna")
    return optuna is not None and isinstance(error, optuna.TrialPruned)


def run(cfg: DictConfig, task: Callable[[Life | None], dict[str, float]]) -> dict[str, float]:
    """The whole life of the run ``cfg`` describes, ``task`` (fit and test, or test alone) its
    body: skipped when it is completed, else begun, run, and completed or failed. ``task`` gets
    None outside a Hydra job (nothing is recorded then). A stop (Ctrl-C, SIGTERM) leaves the
    record saying running, to be continued."""
    global _current, _skipped
    _skipped = False
    if not HydraConfig.initialized():
        return task(None)
    out = Path(HydraConfig.get().runtime.output_dir)
    multirun = records.in_sweep()
    if not records.rank_zero():  # the first process has decided and begun; only read
        metrics = completed_metrics(out, None, announce=False)
        return metrics if metrics is not None else task(Life(out, None, multirun))
    out.mkdir(parents=True, exist_ok=True)  # Hydra has made it; a composed config may not have
    with holding(out):
        identity = resolved_identity(cfg, out)
        done = decide(cfg, out, identity, multirun)
        if isinstance(done, dict):
            _skipped = True
            return done
        life = Life(out, begin(cfg, out, identity, done), multirun)
        _current = life
        try:
            metrics = task(life)
        except Exception as err:
            life.fail(err)
            raise
        finally:
            _current = None
        life.complete(metrics)
    return metrics


@contextlib.contextmanager
def holding(out: Path) -> Iterator[None]:
    """Holds the run folder itself (a lock on the folder, no file in it) while the run decides
    and lives, so that a second process given the same folder stops in one line rather than
    writing the same records. The lock ends with the process, however it ends. On a file system
    without locks on folders the run goes on unguarded."""
    try:
        fd = os.open(out, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise RunInUseError(
                    f"{out} is being run by another process. Wait for it to end, or give "
                    "another hydra.run.dir"
                ) from None
        yield
    finally:
        os.close(fd)


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
    hydra_dir = _hydra_dir()
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
    mark_killed(earlier)
    return True


def _hydra_dir() -> str:
    return str(HydraConfig.get().get("output_subdir") or "")


def begin(
    cfg: DictConfig,
    out: Path,
    identity: tuple[str, dict[str, Any]] | None,
    earlier: records.JobRecord | None,
) -> records.JobRecord:
    """Phase *started*: the record of the attempt that starts now, continuing ``earlier``. An
    earlier attempt's MLflow run that this one does not continue is marked killed."""
    if earlier is None:
        mark_killed(records.read(out))
    hydra = HydraConfig.get()
    choices = hydra.runtime.choices
    return records.begin(
        out,
        identity,
        earlier,
        skip=[_hydra_dir()],
        overrides=list(hydra.overrides.task),
        latent=select_or_none(cfg, "latent"),
        model=choices.get("model"),
        transform=choices.get("transform"),
    )


def select_or_none(config: DictConfig, key: str) -> Any:
    """``key``'s value in ``config``; None when it is missing or does not resolve."""
    try:
        return OmegaConf.select(config, key, throw_on_missing=False)
    except Exception:  # noqa: BLE001 - an unresolvable value is just not recorded
        return None


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
