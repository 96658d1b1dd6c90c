"""A user's mistake ends in one line with exit status 2 and nothing left behind, found before
training where it can be; a full disk, a stop during the test and a NaN metric each say what
happened; a sweep folder is held while its driver or any of its jobs runs."""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.core.utils import JobReturn, JobStatus
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

from ae_lab.core import checkpoints, locks, records, temporaries
from ae_lab.core.errors import DiskFull
from ae_lab.run.single_run import SingleRun
from ae_lab.run.train import train
from ae_lab.sweeps import sweep_lock
from tests.conftest import TINY, compose_cfg

QUIET = (*TINY, "threads=1", "logger=none", "data.val_size=100")


def config(tmp_path: Path, root: Path, *overrides: str, run: str = "run") -> DictConfig:
    """The config of ``python -m ae_lab <overrides>`` into ``tmp_path/outputs/<run>``."""
    folder = tmp_path / "outputs" / run
    return compose_cfg(
        f"data.root={root}", *QUIET, *overrides, f"hydra.run.dir={folder}", run_dir=folder
    )


def run_as_the_cli(cfg: DictConfig) -> dict[str, float]:
    """``train(cfg)`` between the start and the end of a single run, as ``python -m ae_lab``
    runs it: a failure goes to ``SingleRun.on_run_end``, which ends the process as the user
    sees it (``SystemExit``)."""
    callback = SingleRun()
    callback.on_run_start(cfg)
    (Path(cfg.hydra.run.dir) / ".hydra").mkdir()  # what Hydra writes before the task
    try:
        return train(cfg)
    except Exception as err:
        ret = JobReturn(status=JobStatus.FAILED)
        ret._return_value = err
        callback.on_run_end(cfg, ret)
        raise


def refused(capsys, tmp_path: Path, cfg: DictConfig, code: int = 2) -> str:
    """The one line a run of ``cfg`` ends with; it left no folder behind."""
    with pytest.raises(SystemExit) as stop:
        run_as_the_cli(cfg)
    assert stop.value.code == code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("ae_lab:")]
    assert len(lines) == 1 and "Traceback" not in err
    if code == 2:
        assert not (tmp_path / "outputs").exists()
    return lines[0]


# ------------------------------------------------------------------------- settings, up front
def test_an_argument_the_model_does_not_take_is_one_line_naming_its_keys(
    tmp_path, synthetic_root, capsys
):
    cfg = config(tmp_path, synthetic_root, "+model.foo=1")
    assert refused(capsys, tmp_path, cfg) == (
        "ae_lab: model.foo is not an argument of Autoencoder; model takes encoder, decoder, "
        "objective, latent_dim, image_shape, optimizer, hidden, he_init, per_unit"
    )
    cfg = config(tmp_path, synthetic_root, "+optimizer.betas2=1")
    assert refused(capsys, tmp_path, cfg).startswith(
        "ae_lab: optimizer.betas2 is not an argument of Adam (did you mean betas?); "
        "optimizer takes params, lr, betas"
    )


def test_a_run_or_sweep_dir_with_a_name_over_255_bytes_is_one_line(tmp_path, capsys):
    long = "x" * 300
    cfg = compose_cfg(
        f"hydra.run.dir={tmp_path / long / 'run'}",
        f"hydra.sweep.dir={tmp_path / long}",
        run_dir=tmp_path / long,
    )
    with pytest.raises(SystemExit) as stop:
        SingleRun().on_run_start(cfg)
    assert stop.value.code == 2
    line = capsys.readouterr().err
    assert line == (
        "ae_lab: hydra.run.dir has a folder name of 300 bytes (xxxxxxxxxxxxxxxxxxxx...xxxxxxxxxxxx)"
        "; the file system takes at most 255. Give a shorter hydra.run.dir\n"
    )
    with pytest.raises(SystemExit) as stop:
        sweep_lock.SweepLock().on_multirun_start(cfg)
    assert stop.value.code == 2
    assert capsys.readouterr().err.startswith("ae_lab: hydra.sweep.dir has a folder name of 300")
    assert list(tmp_path.iterdir()) == []


def test_a_fit_of_no_training_batches_builds_its_schedule_and_tests(tmp_path, synthetic_root):
    cfg = config(tmp_path, synthetic_root, "callbacks=none", "trainer.limit_train_batches=0")
    metrics = run_as_the_cli(cfg)
    assert "test/mse" in metrics


def test_a_warm_up_of_exactly_one_step_builds_its_schedule(tmp_path, synthetic_root):
    """torch's OneCycleLR divides by zero where pct_start x steps is 1: half of debug=tiny's 2."""
    cfg = config(tmp_path, synthetic_root, "callbacks=none", "scheduler.pct_start=0.5")
    assert "test/mse" in run_as_the_cli(cfg)


def test_a_share_of_batches_below_one_batch_is_one_line(tmp_path, synthetic_root, capsys):
    # found up front on the official files' count: 59,900 training images in batches of 128
    cfg = config(tmp_path, synthetic_root, "callbacks=none", "trainer.limit_train_batches=0.001")
    assert refused(capsys, tmp_path, cfg) == (
        "ae_lab: trainer.limit_train_batches=0.001 of the 468 train batches is less than one "
        "batch; give at least 0.002137, or a number of batches (an integer >= 1)"
    )
    # files smaller than the official ones (500 training images: 4 batches), found by Lightning
    cfg = config(tmp_path, synthetic_root, "callbacks=none", "trainer.limit_train_batches=0.01")
    assert refused(capsys, tmp_path, cfg) == (
        "ae_lab: trainer.limit_train_batches=0.01 of the 4 train batches is less than one "
        "batch; give at least 0.25, or a number of batches (an integer >= 1)"
    )


@pytest.fixture
def autoencoder_checkpoint(tmp_path: Path) -> Path:
    """A checkpoint of a dense autoencoder, as a model=ae run writes it."""
    from ae_lab.models import DenseAE

    path = tmp_path / "ae.ckpt"
    model = DenseAE(latent_dim=2)
    state = {"state_dict": model.state_dict(), "hyper_parameters": {"latent_dim": 2}}
    torch.save({**state, "ae_lab": {"model": "DenseAE"}}, path)
    return path


def test_a_downstream_checkpoint_missing_or_of_another_model_stops_before_training(
    tmp_path, synthetic_root, capsys, autoencoder_checkpoint
):
    use = "Give a model=classifier run's checkpoints/last.ckpt, or null to train one"
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint")
    for path, why in (
        (tmp_path / "missing.ckpt", ": no such file."),
        (text, " cannot be read as a checkpoint (UnpicklingError)."),
        (autoencoder_checkpoint, " was saved by a DenseAE model, not a classifier."),
    ):
        cfg = config(
            tmp_path, synthetic_root, "callbacks=full", f"callbacks.downstream.checkpoint={path}"
        )
        line = refused(capsys, tmp_path, cfg)
        assert line == f"ae_lab: callbacks.downstream.checkpoint={path}{why} {use}"


# --------------------------------------------------------------------------------- a full disk
def no_space_on_second_write(monkeypatch) -> list[str]:
    """The second checkpoint written (fsync'd) finds the disk full; returns the files tried."""
    tried: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        name = os.readlink(f"/proc/self/fd/{fd}")
        if name.endswith(".tmp"):
            tried.append(name)
            if len(tried) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(checkpoints.os, "fsync", fsync)
    return tried


def test_a_full_disk_while_saving_a_checkpoint_keeps_the_previous_one(
    tmp_path, synthetic_root, monkeypatch
):
    tried = no_space_on_second_write(monkeypatch)
    cfg = config(tmp_path, synthetic_root, "callbacks=none", "trainer.max_epochs=2")
    with pytest.raises(DiskFull) as err:
        train(cfg)
    last = tmp_path / "outputs" / "run" / "checkpoints" / "last.ckpt"
    assert str(err.value) == (
        f"no space left on device writing {last} (a file there from before is kept whole); free "
        "some space, then run again (ckpt_path=last continues a single run)"
    )
    assert len(tried) == 2
    assert checkpoints.load(last, "last")["epoch"] == 0  # the end of epoch 0, whole
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]  # no .tmp


class FillsUp:
    """A file that takes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, file, room: int) -> None:
        self.file, self.room = file, room

    def write(self, data) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.file.write(data)

    def __getattr__(self, name: str):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()


def test_torchs_own_report_of_a_full_disk_becomes_one_line(tmp_path, monkeypatch):
    """torch's writer turns the failed write into ``RuntimeError: [enforce fail at
    inline_container.cc]``; the write's own error says it was a full disk."""
    target = tmp_path / "last.ckpt"
    writer = checkpoints.AtomicCheckpointIO()
    writer.save_checkpoint({"epoch": 0, "w": torch.zeros(10)}, target)
    before = target.read_bytes()
    monkeypatch.setattr(checkpoints, "open", lambda p, m: FillsUp(open(p, m), 100), raising=False)  # noqa: SIM115
    with pytest.raises(DiskFull, match=f"^no space left on device writing {target} "):
        writer.save_checkpoint({"epoch": 1, "w": torch.ones(100_000)}, target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_a_full_disk_while_writing_a_record_keeps_the_previous_one(tmp_path, monkeypatch):
    records.write_metrics(tmp_path, {"test/mse": 0.5})
    before = (tmp_path / records.METRICS_FILE).read_text()
    real = Path.write_text

    def half_then_full(self: Path, text: str, *args, **kwargs) -> int:
        real(self, text[: len(text) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

    monkeypatch.setattr(Path, "write_text", half_then_full)
    with pytest.raises(DiskFull, match=r"^no space left on device writing .*metrics\.json "):
        records.write_metrics(tmp_path, {"test/mse": 0.25})
    monkeypatch.undo()
    assert (tmp_path / records.METRICS_FILE).read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == [records.METRICS_FILE]


# ----------------------------------------------------------------------- what a run says itself
class StopInTest(L.Callback):
    """Stops the run at its first test batch as SIGTERM would."""

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        raise SIGTERMException()


def test_a_stop_during_the_test_says_so(tmp_path, synthetic_root, capsys):
    cfg = config(
        tmp_path,
        synthetic_root,
        "callbacks=none",
        "trainer.max_epochs=2",
        "+callbacks.stop._target_=tests.test_guards.StopInTest",
    )
    with pytest.raises(SystemExit) as stop:
        train(cfg)
    assert stop.value.code == 143
    line = capsys.readouterr().err.strip()
    assert line.startswith(
        "ae_lab: stopped by SIGTERM during the test, after training had finished. Test again, "
        "with what training recorded, with the same command with hydra.run.dir="
    )
    assert line.endswith(" ckpt_path=last") and "epoch" not in line


class OverflowWeights(L.Callback):
    """Scales the model's weights up as the test starts, so that its outputs overflow."""

    def on_test_start(self, trainer, pl_module) -> None:
        with torch.no_grad():
            for p in pl_module.parameters():
                p.mul_(1e30)


def test_a_nan_test_metric_comes_with_a_warning_that_says_why(tmp_path, synthetic_root, caplog):
    cfg = config(
        tmp_path,
        synthetic_root,
        "model=vae",
        "latent=2",
        "callbacks=none",
        "data.binarize_target=threshold",
        "+callbacks.nll._target_=ae_lab.evaluation.likelihood.ImportanceSampledNLL",
        "+callbacks.nll.n_samples=2",
        "+callbacks.overflow._target_=tests.test_guards.OverflowWeights",
    )
    with caplog.at_level(logging.WARNING):
        metrics = train(cfg)
    assert metrics["test/nll"] != metrics["test/nll"] or abs(metrics["test/nll"]) == float("inf")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        w.startswith("test/nll is ") and "importance weights are not finite" in w for w in warnings
    )
    [summary] = [w for w in warnings if w.startswith("not finite: ")]
    assert "test/nll=" in summary and "values computed from them overflow" in summary


# --------------------------------------------------------------------- what killed writes leave
def test_temporary_files_of_killed_writes_are_removed_when_a_run_starts(tmp_path, synthetic_root):
    run = tmp_path / "outputs" / "run"
    (run / "checkpoints").mkdir(parents=True)
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = [
        run / "checkpoints" / f".last.ckpt.{gone.pid}.tmp",  # its writer is gone
        run / f".job.json.{os.getpid()}.tmp",  # this process's, from an attempt before
    ]
    for path in stale:
        path.write_bytes(b"")
    # a live process that started before the file was written may still be writing it
    live = run / "checkpoints" / ".best.ckpt.1.tmp"
    live.write_bytes(b"")
    cfg = config(tmp_path, synthetic_root, "callbacks=none")
    train(cfg)
    assert not any(p.exists() for p in stale)
    assert live.exists()


def test_a_temporary_file_older_than_the_process_of_its_pid_is_stale(tmp_path):
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        time.sleep(0.05)
        old = tmp_path / f".last.ckpt.{sleeper.pid}.tmp"
        old.write_bytes(b"")
        os.utime(old, (time.time() - 3600, time.time() - 3600))  # before that process started
        fresh = tmp_path / f".metrics.json.{sleeper.pid}.tmp.keep"  # not an atomic writer's
        fresh.write_bytes(b"")
        assert temporaries.remove_stale_temporaries(tmp_path) == [old]
    finally:
        sleeper.kill()
        sleeper.wait()


# ---------------------------------------------------------------------------------- sweep lock
def test_a_sweep_folder_is_held_while_a_job_of_its_sweep_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(sweep_lock.ENV, raising=False)
    driver = sweep_lock.take(tmp_path)
    mine = sweep_lock.Sweep.parse(os.environ[sweep_lock.ENV])
    assert mine is not None and mine.pid == os.getpid()
    job = sweep_lock.join(tmp_path)  # a job in the driver's process: no watch
    assert job.watch is None
    driver.close()  # the driver has ended, its job runs on
    with pytest.raises(SystemExit) as stop:
        sweep_lock.take(tmp_path)
    assert stop.value.code == 1
    assert capsys.readouterr().err == (
        f"ae_lab: {tmp_path} is being run by jobs of another sweep (driver pid {os.getpid()}, "
        "ended) that still run. Wait for them to end, or give another hydra.sweep.dir\n"
    )
    job.release()
    sweep_lock.take(tmp_path).close()  # free again once the job has ended


def test_a_job_of_a_sweep_that_no_longer_holds_the_folder_stands_down(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.delenv(sweep_lock.ENV, raising=False)
    sweep_lock.take(tmp_path).close()
    first = os.environ[sweep_lock.ENV]
    sweep_lock.take(tmp_path).close()  # another sweep takes the folder
    monkeypatch.setenv(sweep_lock.ENV, first)  # a job of the first starts only now
    with pytest.raises(SystemExit) as stop:
        sweep_lock.join(tmp_path)
    assert stop.value.code == 1
    assert capsys.readouterr().err.endswith("): this job stands down\n")
    free = locks.hold(tmp_path / sweep_lock.JOBS_LOCK)  # it let go of the folder
    assert free is not None
    free.close()


class RecordingWatch(sweep_lock.DriverWatch):
    def stop_job(self) -> None:
        self.stopped = True


def test_a_job_in_another_process_stops_when_its_driver_ends():
    driver = subprocess.Popen(["sleep", "60"])
    watch = RecordingWatch(driver.pid)
    watch.stopped = False
    watch.start()
    time.sleep(0.2)
    assert watch.is_alive() and not watch.stopped
    driver.kill()
    driver.wait()
    watch.join(timeout=10)
    assert watch.stopped

    driver = subprocess.Popen(["sleep", "60"])
    try:
        watch = RecordingWatch(driver.pid)
        watch.stopped = False
        watch.start()
        watch.stop()  # the job ended first
        watch.join(timeout=10)
        assert not watch.is_alive() and not watch.stopped
    finally:
        driver.kill()
        driver.wait()


def test_jobs_on_slurm_do_not_watch_their_driver(tmp_path, monkeypatch):
    monkeypatch.delenv(sweep_lock.ENV, raising=False)
    sweep_lock.take(tmp_path).close()
    here = sweep_lock.Sweep.parse(os.environ[sweep_lock.ENV])
    # a driver in another process on this machine: the parent of this one
    monkeypatch.setenv(sweep_lock.ENV, f"{here.id} {os.getppid()} {here.host}")
    local = sweep_lock.join(tmp_path)
    assert local.watch is not None and local.watch.pid == os.getppid()
    local.release()
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    on_slurm = sweep_lock.join(tmp_path)
    assert on_slurm.watch is None
    on_slurm.release()


def test_a_sweep_start_removes_what_killed_writes_left_in_its_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(sweep_lock.ENV, raising=False)
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = sweep / f".summary.csv.{gone.pid}.tmp"
    stale.write_text("half a summ")
    cfg = compose_cfg(f"hydra.sweep.dir={sweep}", run_dir=sweep / "job")
    callback = sweep_lock.SweepLock()
    callback.on_multirun_start(cfg)
    try:
        assert not stale.exists()
    finally:
        callback.on_multirun_end(cfg)
