"""One sweep at a time in a sweep folder, for as long as its driver or any of its jobs runs; and
on this machine, a sweep's jobs end with the process that drives it.

Two locks in the sweep folder:

- ``.sweep.lock``, held by the process that drives the sweep (``-m``) from its start to its end;
- ``.sweep.jobs.lock``, shared by every job of the sweep while it runs, in whichever process the
  launcher runs it: the driver's (``basic``), a joblib worker (``parallel``), a process that
  submitit starts (``submitit_local``), a SLURM node (``submitit_slurm``).

A driver takes the first, then checks that no job shares the second: a sweep started into a
folder stops with one line while the driver of another sweep there, or any job of one, still
runs, a driver killed with ``kill -9`` included. The check writes the sweep's id (and its
driver's pid and host) into the second file, and each job compares it with its own (passed down
in ``AE_LAB_SWEEP``): a job that starts after another sweep has taken the folder, such as a
SLURM job still queued when its driver ended, stands down rather than train a folder that the
other sweep trains.

On this machine a sweep's jobs end with its driver: joblib's workers by the kernel
(``ae_lab.run.stopping.ParallelWorkers``); submitit's local jobs, whose processes submitit starts
to outlive the driver, by a thread (``DriverWatch``) that waits for the driver's end, then stops
the job as SIGTERM does (``GRACE_S`` later, by SIGKILL). Until they have ended, their shared lock
keeps the folder from another sweep. SLURM's jobs run on: a cluster sweep is meant to outlive the
shell that submitted it, and those that run hold the folder (on a file system whose ``flock``
reaches across nodes, as NFS's and Lustre's with ``-o flock`` do).
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from ae_lab.core import locks, run_dir
from ae_lab.core.errors import exit_with
from ae_lab.core.temporaries import remove_stale_temporaries

log = logging.getLogger(__name__)
# in the sweep dir: the driver's, and the one its jobs share
SWEEP_LOCK = ".sweep.lock"
JOBS_LOCK = ".sweep.jobs.lock"
# "<sweep id> <driver pid> <driver host>", set by the driver for the processes of its jobs
ENV = "AE_LAB_SWEEP"
# seconds a job has to stop after its driver's end before it is killed
GRACE_S = 10.0


@dataclass(frozen=True)
class Sweep:
    """Which sweep a process belongs to: an id of its own, and its driver's pid and host."""

    id: str
    pid: int
    host: str

    def __str__(self) -> str:
        return f"{self.id} {self.pid} {self.host}"

    @classmethod
    def parse(cls, text: str | None) -> Sweep | None:
        parts = (text or "").split()
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        return cls(parts[0], int(parts[1]), parts[2])

    def driver(self) -> str:
        here = self.host == socket.gethostname()
        return f"pid {self.pid}" + ("" if here else f" on {self.host}")


def _read(handle: IO[str]) -> str:
    handle.seek(0)
    return handle.read()


def take(sweep_dir: Path) -> IO[str]:
    """The driver's side: holds ``sweep_dir`` for this sweep, or ends the process with one line
    when another sweep's driver or jobs run there. Returns the lock, held until it is closed."""
    lock = locks.hold(sweep_dir / SWEEP_LOCK)
    if lock is None:
        exit_with(
            f"{sweep_dir} is being run by another sweep "
            f"({locks.holder(sweep_dir / SWEEP_LOCK)}). Wait for it to end, or give "
            "another hydra.sweep.dir",
            1,
        )
    mine = Sweep(uuid.uuid4().hex[:12], os.getpid(), socket.gethostname())
    check = locks.hold(sweep_dir / JOBS_LOCK, f"{mine}\n")
    if check is None:
        lock.close()
        earlier = Sweep.parse((sweep_dir / JOBS_LOCK).read_text())
        driver = f" (driver {earlier.driver()}, ended)" if earlier else ""
        exit_with(
            f"{sweep_dir} is being run by jobs of another sweep{driver} that still run. Wait "
            "for them to end, or give another hydra.sweep.dir",
            1,
        )
    check.close()
    os.environ[ENV] = str(mine)  # for the processes the launcher starts
    return lock


class DriverWatch(threading.Thread):
    """Stops this job when the driver ``pid`` ends: SIGTERM, as a stop from outside would
    (Lightning ends the epoch's loop, ``ae_lab.run.resume`` says how to continue), then SIGKILL
    after ``grace_s`` for a job that cannot stop (SIGTERM outside training is submitit's to
    ignore)."""

    def __init__(self, pid: int, grace_s: float = GRACE_S) -> None:
        super().__init__(name=f"ae_lab-watch-driver-{pid}", daemon=True)
        self.pid, self.grace_s = pid, grace_s
        self.done = threading.Event()

    def run(self) -> None:
        if not self._wait_for_driver():
            return
        log.warning(
            "the sweep's driver (pid %d) has ended: this job stops with it; run the sweep "
            "again into its folder to continue it",
            self.pid,
        )
        self.stop_job()

    def stop_job(self) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        if not self.done.wait(self.grace_s):
            os.kill(os.getpid(), signal.SIGKILL)

    def _wait_for_driver(self) -> bool:
        """True once the driver has ended; False when the job ended first (``stop``)."""
        try:
            fd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            return True
        except (AttributeError, OSError):  # no pidfd (not Linux, an old kernel): poll the pid
            return self._poll_pid()
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            while not self.done.is_set():
                if poller.poll(500):
                    return True
            return False
        finally:
            os.close(fd)

    def _poll_pid(self) -> bool:
        while not self.done.wait(0.5):
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                continue
        return False

    def stop(self) -> None:
        self.done.set()


@dataclass
class JobHold:
    """A job's share of its sweep's folder, and the watch on its driver if it has one."""

    lock: IO[str]
    watch: DriverWatch | None = None

    def release(self) -> None:
        if self.watch is not None:
            self.watch.stop()
        self.lock.close()


def join(sweep_dir: Path) -> JobHold:
    """The job's side: shares ``sweep_dir``'s jobs lock for as long as the job runs, and on this
    machine watches the driver when the job runs in another process. A job of a sweep that no
    longer holds the folder (another one has taken it) ends the process with one line."""
    lock = locks.share(sweep_dir / JOBS_LOCK)
    mine, there = Sweep.parse(os.environ.get(ENV)), Sweep.parse(_read(lock))
    if mine is not None and there is not None and mine.id != there.id:
        lock.close()
        exit_with(
            f"{sweep_dir} is now run by another sweep (driver {there.driver()}) than the one "
            f"that started this job (driver {mine.driver()}): this job stands down",
            1,
        )
    watch = None
    local = os.environ.get("SUBMITIT_EXECUTOR") != "slurm"
    if mine and mine.pid != os.getpid() and mine.host == socket.gethostname() and local:
        watch = DriverWatch(mine.pid)
        watch.start()
    return JobHold(lock, watch)


class SweepLock(Callback):
    """The sweep folder held by the driver (``take``) and shared by each job (``join``)."""

    def __init__(self) -> None:
        self.lock: IO[str] | None = None
        self.job: JobHold | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        run_dir.make(config.hydra.sweep.dir, "hydra.sweep.dir")
        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            self.lock = take(sweep_dir)
        except Exception as err:  # noqa: BLE001 - Hydra would only warn and run the sweep unheld
            exit_with(f"{sweep_dir} cannot be held for this sweep ({err})", 1)
        remove_stale_temporaries(sweep_dir)  # the summaries' of a sweep killed as it wrote them

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            self.job = join(sweep_dir)
        except Exception as err:  # noqa: BLE001 - Hydra would only warn and run the job unheld
            exit_with(f"{sweep_dir}: this job cannot share the sweep's lock ({err})", 1)

    def on_job_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.job is not None:
            self.job.release()
            self.job = None

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.lock is not None:
            self.lock.close()
            self.lock = None
