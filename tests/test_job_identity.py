"""A job is its whole configuration: two jobs that differ in any setting get two folders, two
records and two summary rows; a sweep run again trusts a folder only when its record has the new
job's configuration; a finished run is never trained or written again by resuming it; a job
stopped during its test ends with every metric; one sweep at a time runs a sweep folder."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ae_lab.config import resolvers
from ae_lab.core import locks, records
from ae_lab.core.identity import changes, identity
from ae_lab.sweeps.sweep import SWEEP_LOCK
from tests.conftest import (
    REPO,
    InProcessRun,
    ae_lab_command,
    compose_cfg,
    run_in_process,
    sweep_in_process,
)

resolvers.register()

# the sweep's jobs differ only in trainer.limit_train_batches, which folder names leave out unless,
# as here, nothing else tells the jobs apart (what every job shares is left out of the names)
COMMON = (
    "model=ae",
    "latent=4",
    "threads=1",
    "trainer.max_epochs=1",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.num_sanity_val_steps=0",
    "trainer.enable_progress_bar=false",
)
SWEEP = (*COMMON, "trainer.limit_train_batches=2,3")  # with -m
# what training logs and a test pass run again cannot give back
TRAINING_METRICS = {"val/mse", "val/loss", "train/loss", "pca/val_mse", "time/epoch_s"}


# ---------------------------------------------------------------- names, records, identity


def test_a_name_tells_apart_what_it_leaves_out_and_stays_readable():
    two = resolvers.run_name(["model=ae", "latent=4", "trainer.limit_train_batches=2"])
    three = resolvers.run_name(["model=ae", "latent=4", "trainer.limit_train_batches=3"])
    assert two != three
    assert two.startswith("model=ae,latent=4@") and three.startswith("model=ae,latent=4@")
    # the same overrides always give the same name: a sweep run again finds its jobs
    assert resolvers.run_name(["model=ae", "latent=4", "trainer.limit_train_batches=2"]) == two
    # nothing left out, or only what changes how a run is shown: the overrides as typed
    assert resolvers.run_name(["model=ae", "latent=4"]) == "model=ae,latent=4"
    assert resolvers.run_name(["latent=4", "trainer.enable_progress_bar=false"]) == "latent=4"
    # replaced characters would make two jobs one
    assert resolvers.run_name(["data.split=a/b"]) != resolvers.run_name(["data.split=a_b"])


def test_a_name_never_exceeds_the_cap_however_many_overrides():
    many = [f"model.option_{i}=a_rather_long_value_{i}" for i in range(40)]
    first, second = resolvers.run_name(many), resolvers.run_name([*many[:-1], "model.option_39=x"])
    assert first != second
    for name in (first, second):
        assert len(name.encode()) <= resolvers.MAX_NAME_BYTES
        assert name.startswith("model.option_0=a_rather_long_value_0,") and "/" not in name
    assert len(resolvers.run_name(["latent=8", "model.note=" + "é" * 200]).encode()) <= 150


def test_a_record_reads_back_as_written_and_old_records_still_read(tmp_path):
    record = records.JobRecord(
        records.RUNNING,
        "0123456789abcdef",
        overrides=["latent=4"],
        latent=4,
        model="ae",
        attempts=[records.Attempt(100.0, 5.0), records.Attempt(200.0)],
        fit=records.Fit({"val/mse": 0.1}, "checkpoints/best.ckpt"),
        config={"latent": 4, "trainer": {"max_epochs": 1}},
    )
    records.write(tmp_path, record)
    assert records.read(tmp_path) == record
    assert record.earlier_wall_s() == 5.0
    # a record of an earlier version: no identity, attempts or fit
    old = {"status": "completed", "overrides": ["latent=2"], "wall_s": 3.0, "extra": 1}
    (tmp_path / records.JOB_FILE).write_text(json.dumps(old))
    read = records.read(tmp_path)
    assert read.status == "completed" and read.identity is None and not read.matches(None)
    for damaged in ("{", "[]", '{"attempts": [1]}'):
        (tmp_path / records.JOB_FILE).write_text(damaged)
        assert records.read(tmp_path) is None
    (tmp_path / records.JOB_FILE).write_text('{"status": "running", "fit": {"x": 1}}')
    assert records.read(tmp_path).fit is None


def identity_of(run_dir: Path, *overrides: str) -> tuple[str, dict]:
    return identity(compose_cfg(*overrides, run_dir=run_dir), run_dir)


def test_identity_is_the_whole_config_but_how_it_is_shown_and_where_it_lives(tmp_path):
    base, config = identity_of(tmp_path / "a", "latent=4")
    assert config["callbacks"]["model_checkpoint"]["dirpath"] == "<run dir>/checkpoints"
    # the same job moved elsewhere, continued from its last.ckpt, shown differently
    for same in (
        identity_of(tmp_path / "b", "latent=4"),
        identity_of(tmp_path / "a", "latent=4", "ckpt_path=last"),
        identity_of(tmp_path / "a", "latent=4", "trainer.enable_progress_bar=false"),
    ):
        assert same[0] == base
    # keys that the run name leaves out still make another job
    for other in ("trainer.limit_train_batches=2", "data.root=/elsewhere", "threads=2"):
        new, new_config = identity_of(tmp_path / "a", "latent=4", other)
        assert new != base
        key, value = other.split("=")
        assert f"{key}: " in changes(config, new_config) and value in (changes(config, new_config))


def test_set_aside_moves_a_run_and_keeps_what_the_new_attempt_writes(tmp_path):
    run = tmp_path / "latent=4"
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_text("old weights")
    (run / "train.log").write_text("old log\n")
    (run / records.METRICS_FILE).write_text("{}")
    aside = records.set_aside(run, keep=[".hydra"], logs=[run / "train.log"])
    assert aside.name == "latent=4.superseded-1"
    assert sorted(p.name for p in run.iterdir()) == [".hydra", "train.log"]
    assert (run / "train.log").read_text() == ""
    assert (aside / "train.log").read_text() == "old log\n"
    assert (aside / "checkpoints" / "last.ckpt").read_text() == "old weights"
    assert records.set_aside(run, keep=[".hydra"]).name == "latent=4.superseded-2"


def test_the_sweep_lock_is_released_when_its_holder_is_killed(tmp_path):
    lock = tmp_path / SWEEP_LOCK
    code = (
        "from pathlib import Path; from ae_lab.core import locks; "
        f"h = locks.hold(Path({str(lock)!r}))"
        "; print('held', flush=True); import time; time.sleep(60)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert locks.hold(lock) is None
        assert locks.holder(lock) == f"pid {holder.pid}"
    finally:
        holder.kill()
        holder.wait()
    mine = locks.hold(lock)
    assert mine is not None
    mine.close()


# ------------------------------------- through the entrypoint: in this process, but for the kill


def job_dirs(sweep: Path) -> dict[str, Path]:
    """The sweep's jobs by their ``trainer.limit_train_batches`` override."""
    out = {}
    for job in sweep.glob("*/.hydra"):
        overrides = records.read(job.parent).overrides
        out[next(o for o in overrides if o.startswith("trainer.limit_train"))] = job.parent
    return out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("identity")


@pytest.fixture(scope="module")
def sweep(workdir, mnist_root) -> Path:
    return sweep_in_process(*SWEEP, sweep_dir=workdir / "sweep", data_root=mnist_root).sweep_dir


@pytest.fixture(scope="module")
def continued(workdir, mnist_root) -> tuple[Path, InProcessRun, records.JobRecord]:
    """A run killed (kill -9, a process) during its test pass, then continued with
    ``ckpt_path=last`` (in this process); with the record its kill left."""
    run_dir = workdir / "killed"
    overrides = (*COMMON, "trainer.limit_train_batches=2", f"hydra.run.dir={run_dir}")
    proc = subprocess.Popen(
        **ae_lab_command(*overrides, data_root=mnist_root),
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while (record := records.read(run_dir)) is None or record.fit is None:  # the test starts
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    killed = records.read(run_dir)
    assert killed.status == records.RUNNING and not (run_dir / records.METRICS_FILE).exists()
    done = run_in_process(*overrides[:-1], "ckpt_path=last", run_dir=run_dir, data_root=mnist_root)
    return run_dir, done, killed


@pytest.mark.integration
def test_jobs_that_differ_only_in_a_trainer_key_both_run(sweep):
    jobs = job_dirs(sweep)
    assert set(jobs) == {"trainer.limit_train_batches=2", "trainer.limit_train_batches=3"}
    assert {p.name for p in jobs.values()} == set(jobs)  # named by the one key that differs
    two, three = (records.read(jobs[k]) for k in sorted(jobs))
    assert two.status == three.status == records.COMPLETED and two.identity != three.identity
    with open(sweep / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    assert {r["overrides"].split()[-1] for r in rows} == set(jobs)


@pytest.mark.integration
def test_a_job_stopped_during_its_test_ends_with_every_metric_and_all_its_time(sweep, continued):
    run_dir, done, killed = continued
    assert "training finished in an earlier attempt" in done.out
    assert "resuming from" not in done.out  # no training again
    metrics = records.read_metrics(run_dir)
    assert set(metrics) >= TRAINING_METRICS
    # the same numbers as the sweep's job of this configuration, which was never stopped
    unbroken = records.read_metrics(job_dirs(sweep)["trainer.limit_train_batches=2"])
    assert {k: v for k, v in metrics.items() if not k.startswith("time/")} == {
        k: v for k, v in unbroken.items() if not k.startswith("time/")
    }
    record = records.read(run_dir)
    assert record.status == records.COMPLETED and record.identity == killed.identity
    first, second = record.attempts
    assert first.started == killed.attempts[0].started and first.wall_s > 0 and second.wall_s > 0
    assert record.wall_s == pytest.approx(first.wall_s + second.wall_s)
    assert metrics["time/wall_s"] > first.wall_s  # the killed attempt's time counts


@pytest.mark.integration
def test_resuming_a_finished_run_leaves_every_file_as_it_was(continued, workdir, mnist_root):
    run_dir = continued[0]
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    overrides = (*COMMON, "trainer.limit_train_batches=2", "ckpt_path=last")
    again = run_in_process(*overrides, run_dir=run_dir, data_root=mnist_root)
    assert again.code == 0 and again.metrics is None  # nothing run
    assert f"{run_dir} is a completed run" in again.out
    assert str(run_dir / records.METRICS_FILE) in again.out
    # another configuration into it: one line, exit 2, and still nothing written
    other = run_in_process(
        *overrides, "latent=8", run_dir=run_dir, data_root=mnist_root, check=False
    )
    assert other.code == 2
    assert "another configuration (latent: 4 -> 8" in other.message
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


@pytest.mark.integration
def test_a_sweep_run_again_reruns_a_job_whose_configuration_changed(sweep, workdir, mnist_root):
    jobs = job_dirs(sweep)
    changed, kept = jobs["trainer.limit_train_batches=3"], jobs["trainer.limit_train_batches=2"]
    # as after a changed default in the YAML: the recorded configuration is not the new one
    record = records.read(changed)
    identity = record.identity
    record.identity, record.config["seed"] = "0" * 16, 1
    records.write(changed, record)
    old_metrics = (changed / records.METRICS_FILE).read_bytes()
    out = sweep_in_process(*SWEEP, sweep_dir=sweep, data_root=mnist_root).out
    assert f"{kept.name}: completed in an earlier run of this sweep, skipped" in out
    assert f"{changed.name}: its configuration changed (seed: 1 -> 0)" in out
    assert "resuming from" not in out  # not from the other configuration's last.ckpt
    aside = sweep / f"{changed.name}.superseded-1"
    assert (aside / records.METRICS_FILE).read_bytes() == old_metrics
    rerun = records.read(changed)
    assert rerun.status == records.COMPLETED and rerun.identity == identity
    assert len(rerun.attempts) == 1
    with open(sweep / "summary.csv") as f:
        assert len(list(csv.DictReader(f))) == 2


@pytest.mark.integration
def test_a_second_sweep_into_a_held_folder_stops_with_one_line(workdir, mnist_root):
    sweep = workdir / "held"
    lock = locks.hold(sweep / SWEEP_LOCK)  # this process stands for the sweep that runs there
    try:
        held = sweep_in_process(
            "latent=2,4", "threads=1", sweep_dir=sweep, data_root=mnist_root, check=False
        )
    finally:
        lock.close()
    assert held.code == 1 and held.error is None
    assert held.err.strip() == (
        f"ae_lab: {sweep} is being run by another sweep (pid {os.getpid()}). Wait for it to "
        "end, or give another hydra.sweep.dir"
    )
    assert [p.name for p in sweep.iterdir()] == [SWEEP_LOCK]  # no job started
