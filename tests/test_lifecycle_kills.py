"""A run's life through the entrypoint, killed by real signals: at the end of its fit (after the
last epoch's ``last.ckpt``, before the fit is recorded), at random moments of a short sweep, and
with an MLflow run; and single runs started together on the default folder."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ae_lab.core import records
from ae_lab.reporting import collect
from tests.conftest import (
    FAST,
    TRAINING_METRICS,
    WITH_TRAINING_METRICS,
    ae_lab_command,
    run_in_process,
    sweep_in_process,
)

pytestmark = pytest.mark.integration

# FAST on the synthetic files, two epochs, with the PCA baseline, a learning-rate monitor, a
# logger and the best model by val/loss, as the default callbacks have them
ON_SYNTHETIC = (*FAST, "data.val_size=100", "trainer.max_epochs=2")
# and a probe that holds the run at the end of its fit, when $AE_LAB_PROBE_HOLD names a file
WITH_HOLD = (*WITH_TRAINING_METRICS, "+callbacks.hold._target_=tests.probes.HoldAt")


def without_time(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not k.startswith("time/")}


def start(*overrides: str, cwd: Path, data_root: Path, **env: str) -> subprocess.Popen:
    command = ae_lab_command(*overrides, data_root=data_root)
    return subprocess.Popen(
        **{**command, "env": {**command["env"], **env}},
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the run ended ({proc.returncode}) before {path} appeared"
        assert time.monotonic() < deadline
        time.sleep(0.02)


def launch_time(sweep: Path) -> int | None:
    """When a sweep's launcher last started its jobs: the time of its ``multirun.yaml``."""
    try:
        return (sweep / "multirun.yaml").stat().st_mtime_ns
    except FileNotFoundError:
        return None


def wait_for_change(read, before, proc: subprocess.Popen, timeout: float = 300) -> None:
    """Until ``read()`` gives something other than ``before``, or the process ends."""
    deadline = time.monotonic() + timeout
    while read() == before and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_a_kill_after_the_last_checkpoint_before_the_fit_is_recorded_loses_no_metric(
    tmp_path, synthetic_root
):
    unbroken = tmp_path / "unbroken"
    common = (*ON_SYNTHETIC, *WITH_HOLD, f"data.root={synthetic_root}")
    run_in_process(*common, run_dir=unbroken, data_root=synthetic_root)  # no kill: in process
    killed = tmp_path / "killed"
    held = tmp_path / "held"
    proc = start(
        *common,
        f"hydra.run.dir={killed}",
        cwd=tmp_path,
        data_root=synthetic_root,
        AE_LAB_PROBE_HOLD=str(held),
    )
    wait_for(held, proc)  # every epoch and its last.ckpt written; the fit not yet recorded
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    record = records.read(killed)
    assert record.status == records.RUNNING and record.fit is None
    assert not (killed / records.METRICS_FILE).exists()

    done = run_in_process(*common, "ckpt_path=last", run_dir=killed, data_root=synthetic_root)
    assert f"resuming from {killed / 'checkpoints' / 'last.ckpt'}" in done.out + done.err
    metrics = records.read_metrics(killed)
    assert set(metrics) >= TRAINING_METRICS
    assert without_time(metrics) == without_time(records.read_metrics(unbroken))
    assert records.read(killed).status == records.COMPLETED
    # and the next re-run finds it completed, every metric there
    again = run_in_process(*common, "ckpt_path=last", run_dir=killed, data_root=synthetic_root)
    assert f"{killed} is a completed run" in again.out


def test_a_new_training_into_a_completed_run_stops_in_one_line_and_leaves_it(
    tmp_path, synthetic_root
):
    run = tmp_path / "run"
    common = (*ON_SYNTHETIC, f"data.root={synthetic_root}")
    run_in_process(*common, run_dir=run, data_root=synthetic_root)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    again = run_in_process(*common, "seed=3", run_dir=run, data_root=synthetic_root, check=False)
    assert again.code == 2
    assert again.message == (
        f"hydra.run.dir={run} holds a completed run, which a new training would "
        "overwrite. Give a new hydra.run.dir (or none, for a folder of its own); ckpt_path=last "
        "shows its metrics"
    )
    own = run_in_process(
        *common,
        f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
        run_dir=run,
        data_root=synthetic_root,
    )
    assert f"{run} is a completed run, nothing to resume" in own.out
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_single_runs_started_together_get_folders_of_their_own(tmp_path, synthetic_root):
    common = (*FAST, "data.val_size=100", f"data.root={synthetic_root}")
    procs = [start(*common, f"seed={s}", cwd=tmp_path, data_root=synthetic_root) for s in (0, 1)]
    assert [p.wait(timeout=600) for p in procs] == [0, 0]
    folders = sorted(p.parent.parent for p in tmp_path.glob("outputs/*/*/.hydra/config.yaml"))
    assert len(folders) == 2
    seeds, test_mse = set(), set()
    for folder in folders:
        record = records.read(folder)
        assert record.status == records.COMPLETED
        assert records.read_metrics(folder) == record.metrics  # one run's files, not two
        seeds.add(record.config["seed"])
        test_mse.add(record.metrics["test/mse"])
    assert seeds == {0, 1} and len(test_mse) == 2


def test_a_sweep_killed_at_random_moments_ends_with_the_metrics_of_an_unbroken_one(
    tmp_path, synthetic_root
):
    """A property over kill moments: wherever a kill lands, continuing the sweep ends with every
    job completed and its metrics exactly those of a sweep that was never stopped (resume is
    exact). The moments are drawn from a seed the failure message gives."""
    common = ("latent=2,3", *ON_SYNTHETIC, f"data.root={synthetic_root}")
    unbroken = tmp_path / "unbroken"
    began = time.monotonic()
    sweep_in_process(*common, sweep_dir=unbroken, data_root=synthetic_root)  # no kill: in process
    took = time.monotonic() - began  # the jobs' time, without a process's start
    expected = {d.name: without_time(records.read_metrics(d)) for d in collect.job_dirs(unbroken)}
    assert len(expected) == 2

    seed = int(os.environ.get("AE_LAB_KILL_SEED", random.randrange(10**6)))
    draw = random.Random(seed)
    sweep = tmp_path / "killed"
    kills = []
    for _ in range(4):
        launched = launch_time(sweep)
        proc = start(
            "-m", *common, f"hydra.sweep.dir={sweep}", cwd=tmp_path, data_root=synthetic_root
        )
        # from the moment the launcher starts the jobs (it writes multirun.yaml), not before:
        # a kill while the process imports torch would test nothing
        wait_for_change(lambda: launch_time(sweep), launched, proc)
        moment = draw.uniform(0.0, 1.0) * took
        kills.append(round(moment, 2))
        try:
            proc.wait(timeout=moment)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
    sweep_in_process(*common, sweep_dir=sweep, data_root=synthetic_root)
    jobs = {d.name: d for d in collect.job_dirs(sweep)}
    where = f"(seed {seed}, kills at {kills} s)"
    assert set(jobs) == set(expected), where
    for name, job in jobs.items():
        record = records.read(job)
        assert record.status == records.COMPLETED, where
        assert without_time(records.read_metrics(job)) == expected[name], f"{name} {where}"
        assert without_time(record.metrics) == expected[name], f"{name} {where}"
    rows = json.dumps(collect.collect(sweep))
    assert "incomplete" not in rows and "failed" not in rows, where


def test_a_killed_and_continued_mlflow_run_leaves_no_run_running(tmp_path, synthetic_root):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = tmp_path / "run"
    common = (
        *ON_SYNTHETIC,
        f"data.root={synthetic_root}",
        "logger=mlflow",
        f"logger.mlflow.tracking_uri={uri}",
        "+callbacks.hold._target_=tests.probes.HoldAt",
        f"hydra.run.dir={run}",
    )
    held = tmp_path / "held"
    proc = start(*common, cwd=tmp_path, data_root=synthetic_root, AE_LAB_PROBE_HOLD=str(held))
    wait_for(held, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    first = records.read(run).mlflow["run_id"]
    held.unlink()
    run_in_process(*common, "ckpt_path=last", data_root=synthetic_root)  # no kill: in process
    client = MlflowClient(tracking_uri=uri)
    [experiment] = [e for e in client.search_experiments() if e.name == "ae_lab"]
    runs = client.search_runs([experiment.experiment_id])
    assert [(r.info.run_id, r.info.status) for r in runs] == [(first, "FINISHED")]
    assert "test/mse" in runs[0].data.metrics

    # killed again, then started afresh in the same folder: the killed run is marked so
    other = tmp_path / "other"
    fresh = (*common[:-1], f"hydra.run.dir={other}")
    proc = start(*fresh, cwd=tmp_path, data_root=synthetic_root, AE_LAB_PROBE_HOLD=str(held))
    wait_for(held, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    killed = records.read(other).mlflow["run_id"]
    run_in_process(*fresh, "seed=4", data_root=synthetic_root)
    status = {r.info.run_id: r.info.status for r in client.search_runs([experiment.experiment_id])}
    assert status.pop(killed) == "KILLED"
    assert sorted(status.values()) == ["FINISHED", "FINISHED"]
