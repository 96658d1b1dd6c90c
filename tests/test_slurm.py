"""Sweeps on SLURM: one line without SLURM, and a job that SLURM signals is requeued and ends
with the metrics of a job that never stopped (SLURM's commands stood in for by tests/fake_slurm)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests import fake_slurm
from tests.conftest import REPO, ae_lab_command, run_in_process, sweep_in_process

pytestmark = pytest.mark.integration

# Two epochs, the job held at the start of the second (tests.probes.HoldForPreemption) until the
# test signals it, so the signal comes after epoch 0's last.ckpt and before epoch 1 ends.
JOB = (
    "latent=4",
    "threads=1",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=3",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.num_sanity_val_steps=0",
    "trainer.enable_progress_bar=false",
    "callbacks.latent_map.n_points=50",
    "+callbacks.hold._target_=tests.probes.HoldForPreemption",
)
LAUNCHER_CONFIG = REPO / "conf" / "hydra" / "launcher" / "submitit_slurm.yaml"


def test_slurm_launcher_without_slurm_says_so_in_one_line(tmp_path, mnist_root, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no srun
    sweep = tmp_path / "sweep"
    ended = sweep_in_process(
        "hydra/launcher=submitit_slurm",
        "latent=2,4",
        sweep_dir=sweep,
        data_root=mnist_root,
        check=False,
    )
    assert ended.code == 1 and ended.error is None
    assert ended.err.strip().splitlines() == [
        "ae_lab: hydra/launcher=submitit_slurm submits jobs with SLURM, but this machine has no "
        "sbatch or srun on PATH (not a SLURM login node?). To try the sweep here, as local "
        "processes through the same code path: hydra/launcher=submitit_local"
    ]
    assert not sweep.exists()  # nothing submitted, nothing written


def wait_for(what: str, found, proc: subprocess.Popen | None, timeout: float = 300):
    """``found()``'s first true value, polled while the sweep ``proc`` runs (if given)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the sweep ended (exit {proc.returncode}) before {what}")
        time.sleep(0.2)
    pytest.fail(f"no {what} within {timeout} s")


def metrics(run_dir: Path) -> dict[str, float]:
    values = json.loads((run_dir / "metrics.json").read_text())
    return {k: v for k, v in values.items() if not k.startswith("time/")}


def test_a_signalled_slurm_job_is_requeued_and_ends_as_an_unbroken_one(
    tmp_path, mnist_root, monkeypatch
):
    unbroken = tmp_path / "unbroken"
    run_in_process(*JOB, run_dir=unbroken, data_root=mnist_root)

    slurm = tmp_path / "slurm"
    fake_slurm.install(slurm / "bin")
    monkeypatch.setenv("PATH", f"{slurm / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM_DIR", str(slurm))
    sweep = tmp_path / "sweep"
    sweep_args = ("-m", "hydra/launcher=submitit_slurm", f"hydra.sweep.dir={sweep}", *JOB)
    command = ae_lab_command(*sweep_args, data_root=mnist_root)
    with open(tmp_path / "sweep.log", "w") as out:
        proc = subprocess.Popen(**command, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        held = wait_for("the job held in epoch 1", lambda: next(sweep.glob("*/held"), None), proc)
        job_dir = held.parent
        assert (job_dir / "checkpoints" / "last.ckpt").is_file()  # epoch 0, saved before the stop
        script = next(sweep.glob(".submitit/*/*_submission.sh")).read_text()
        sig, delay = re.search(r"^#SBATCH --signal=(\w+)@(\d+)$", script, re.M).groups()
        # the signal the generated script asks SLURM for is the one the config names
        assert f"#SBATCH --signal={sig}@<this>" in LAUNCHER_CONFIG.read_text() and delay == "120"
        job_id = (slurm / "last_id").read_text()
        subprocess.run(["scancel", f"--signal={sig}", job_id], check=True)
        assert proc.wait(timeout=300) == 0, (tmp_path / "sweep.log").read_text()[-3000:]
        # the sweep ends on the job's result; the job's process ends just after
        state = slurm / f"{job_id}.state"
        wait_for("the job's end", lambda: state.read_text() != "RUNNING", None, timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        for task in slurm.glob("*.task"):  # a job left running by a failure
            if task.with_suffix(".state").read_text() not in ("COMPLETED", "FAILED"):
                subprocess.run(["kill", "-9", task.read_text()], capture_output=True)

    # signalled, requeued by the job itself, exited, run again to the end
    assert (slurm / "calls").read_text().splitlines() == [
        f"sbatch {job_id}",
        f"signal {job_id} SIG{sig}",
        f"requeue {job_id}",
        f"exit {job_id} 255",  # submitit's exit after the requeue
        f"exit {job_id} 0",
    ]
    assert state.read_text() == "COMPLETED"
    log = (job_dir / "train.log").read_text()
    assert f"Requeued job {job_id}" in log  # by submitit's handler, in the job
    assert log.count("resuming from") == 1 and "last.ckpt" in log
    assert "SLURM auto-requeueing enabled" not in log  # Lightning's own requeue is off
    assert not list(job_dir.glob("hpc_ckpt_*.ckpt"))
    assert json.loads((job_dir / "job.json").read_text())["status"] == "completed"
    assert metrics(job_dir) == metrics(unbroken)
