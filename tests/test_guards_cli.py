"""What only processes can show: a sweep's jobs end with their driver, and while any of them
runs a second sweep into the same folder stops with one line."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from ae_lab.core import locks
from ae_lab.sweeps import sweep_lock
from tests.conftest import FAST, ae_lab_command, run_ae_lab, write_mnist

pytestmark = pytest.mark.integration


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, killed but not yet reaped by its parent, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_for(what: str, found, driver: subprocess.Popen | None = None, timeout: float = 300.0):
    """``found()``'s first true value, polled while ``driver`` (if given) runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        if driver is not None and driver.poll() is not None:
            pytest.fail(f"the sweep ended (exit {driver.returncode}) before {what}")
        time.sleep(0.1)
    pytest.fail(f"no {what} within {timeout} s")


def test_a_killed_drivers_submitit_jobs_hold_the_folder_until_they_end_with_it(tmp_path):
    data = write_mnist(tmp_path / "data")
    sweep = tmp_path / "sweep"
    overrides = (
        "-m",
        "hydra/launcher=submitit_local",
        f"hydra.sweep.dir={sweep}",
        "latent=2",
        *FAST,
        "data.val_size=100",
        "+callbacks.stall._target_=tests.probes.StallInTraining",
    )
    driver = subprocess.Popen(
        **ae_lab_command(*overrides, data_root=data),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "driver.err").open("w"),
    )
    job_pid = None
    try:
        pid_file = wait_for("job pid", lambda: next(sweep.glob("*/job.pid"), None), driver)
        job_pid = int(wait_for("pid", pid_file.read_text))
        assert job_pid != driver.pid and alive(job_pid)
        # the job frozen, so that it lives on for as long as the test needs it to
        os.kill(job_pid, signal.SIGSTOP)
        driver.kill()
        driver.wait()
        assert alive(job_pid)

        second = run_ae_lab(*overrides, cwd=tmp_path, data_root=data, check=False, full_error=False)
        assert second.returncode == 1 and "Traceback" not in second.stderr
        assert second.stderr.strip() == (
            f"ae_lab: {sweep} is being run by jobs of another sweep (driver pid {driver.pid}, "
            "ended) that still run. Wait for them to end, or give another hydra.sweep.dir"
        )

        os.kill(job_pid, signal.SIGCONT)
        wait_for("the job's end", lambda: not alive(job_pid), timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        if job_pid is not None and alive(job_pid):
            os.kill(job_pid, signal.SIGKILL)
    log = next(sweep.glob("*/train.log")).read_text()
    assert f"the sweep's driver (pid {driver.pid}) has ended: this job stops with it" in log
    assert (
        "ae_lab: stopped by SIGTERM in epoch 0" in next(sweep.glob(".submitit/*/*.err")).read_text()
    )
    # the folder is free again: a driver takes it
    for name in (sweep_lock.SWEEP_LOCK, sweep_lock.JOBS_LOCK):
        lock = locks.hold(sweep / name)
        assert lock is not None
        lock.close()
