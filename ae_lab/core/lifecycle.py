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
started in any way has these protections. Before anything is written it decides what to do about
what the folder holds (``ae_lab.core.earlier_run``).
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
from omegaconf import DictConfig

from ae_lab.core import attempts, earlier_run, records
from ae_lab.core.errors import AeLabError, one_line
from ae_lab.core.identity import resolved_identity
from ae_lab.core.values import select_or_none

log = logging.getLogger(__name__)


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
        return attempts.fit_to_test(self.out)

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
            attempts.record_latent(self.out, latent)

    def record_fit(self, metrics: dict[str, float], checkpoint: Path) -> None:
        """Phase *fit recorded*."""
        if self.writes:
            attempts.record_fit(self.out, metrics, checkpoint)

    def complete(self, metrics: dict[str, float]) -> None:
        """Phases *tested* and *completed*: ``metrics.json``, then the record that says so."""
        if self.writes:
            records.write_metrics(self.out, metrics)
            self.record = attempts.finish(self.out, self.record, True, metrics=metrics)

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
        self.record = attempts.finish(self.out, self.record, False, one_line(err), pruned=stopped)


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
        metrics = earlier_run.completed_metrics(out, None, announce=False)
        return metrics if metrics is not None else task(Life(out, None, multirun))
    out.mkdir(parents=True, exist_ok=True)  # Hydra has made it; a composed config may not have
    with holding(out):
        identity = resolved_identity(cfg, out)
        done = earlier_run.decide(cfg, out, identity, multirun)
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


def begin(
    cfg: DictConfig,
    out: Path,
    identity: tuple[str, dict[str, Any]] | None,
    earlier: records.JobRecord | None,
) -> records.JobRecord:
    """Phase *started*: the record of the attempt that starts now, continuing ``earlier``. An
    earlier attempt's MLflow run that this one does not continue is marked killed."""
    if earlier is None:
        earlier_run.mark_killed(records.read(out))
    hydra = HydraConfig.get()
    choices = hydra.runtime.choices
    return attempts.begin(
        out,
        identity,
        earlier,
        skip=[earlier_run.hydra_dir()],
        overrides=list(hydra.overrides.task),
        latent=select_or_none(cfg, "latent"),
        model=choices.get("model"),
        transform=choices.get("transform"),
    )
