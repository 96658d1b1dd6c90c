"""A run's life (``ae_lab.core.lifecycle``) as ``train(cfg)`` lives it, in this process: begun,
fit recorded, tested, completed; a completed run never rewritten; a record that is damaged, odd
or incomplete repaired or run again, with one line saying which."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict, read_write

from ae_lab.core import checkpoints, earlier_run, lifecycle, records, run_dir
from ae_lab.reporting import collect, report
from ae_lab.run import resume
from ae_lab.run.single_run import SingleRun
from ae_lab.run.train import train
from tests.conftest import FAST, TRAINING_METRICS, WITH_TRAINING_METRICS, compose_cfg


def cfg_for(run: Path, root: Path, *overrides: str, multirun: bool = False):
    """The config of ``python -m ae_lab`` with FAST settings on the synthetic files, in ``run``."""
    mode = ("hydra.mode=MULTIRUN",) if multirun else ()
    return compose_cfg(
        *FAST, f"data.root={root}", "data.val_size=100", *overrides, *mode, run_dir=run
    )


def files(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def without_time(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not k.startswith("time/")}


def rewind_to_last_checkpoint(run: Path) -> None:
    """The run dir as a kill after the last epoch's ``last.ckpt``, before the fit was recorded,
    leaves it: the record says running, without a fit; no metrics.json."""
    record = records.read(run)
    record.status, record.fit, record.metrics, record.wall_s = records.RUNNING, None, None, None
    record.attempts[-1].wall_s = None
    records.write(run, record)
    (run / records.METRICS_FILE).unlink()


@pytest.fixture(scope="module")
def completed(tmp_path_factory, synthetic_root) -> tuple[Path, dict]:
    """A completed single run with the PCA baseline and a learning-rate monitor, as the default
    callbacks have them, and its metrics."""
    run = tmp_path_factory.mktemp("completed") / "run"
    metrics = train(cfg_for(run, synthetic_root, *WITH_TRAINING_METRICS))
    return run, metrics


def test_train_lives_the_whole_life_and_keeps_every_phase_on_disk(completed):
    run, metrics = completed
    record = records.read(run)
    assert record.status == records.COMPLETED and record.identity is not None
    assert set(metrics) >= TRAINING_METRICS | {"test/mse"}
    assert records.read_metrics(run) == metrics == record.metrics
    # the fit's record names the checkpoint it tested, the one named best.ckpt
    assert record.fit is not None and record.fit.checkpoint == os.path.join(
        "checkpoints", "best.ckpt"
    )
    assert not list((run / "checkpoints").glob("best-v*.ckpt"))


def test_a_new_training_into_a_completed_run_is_refused_and_the_run_left_as_it_was(
    completed, synthetic_root
):
    run, metrics = completed
    before = files(run)
    with pytest.raises(earlier_run.CompletedRunError, match=r"holds a completed run") as err:
        train(cfg_for(run, synthetic_root, *WITH_TRAINING_METRICS))
    assert err.value.exit_code == 2 and "\n" not in str(err.value)
    # continuing it, by ckpt_path=last or by naming its own last.ckpt: its metrics, untouched
    for ckpt in ("last", str(run / "checkpoints" / "last.ckpt")):
        again = cfg_for(run, synthetic_root, *WITH_TRAINING_METRICS, f"ckpt_path={ckpt}")
        assert train(again) == metrics
    assert files(run) == before


def test_the_early_check_refuses_before_hydra_writes_anything(completed, synthetic_root, capsys):
    """The single-run callback decides as the lifecycle does, before Hydra's files are written."""
    run, _ = completed
    cfg = cfg_for(run, synthetic_root, *WITH_TRAINING_METRICS, f"hydra.run.dir={run}")
    with pytest.raises(SystemExit) as stop:
        SingleRun().on_run_start(cfg)
    assert stop.value.code == 2
    assert capsys.readouterr().err.startswith(f"ae_lab: hydra.run.dir={run} holds a completed run")


def test_a_kill_after_the_last_checkpoint_loses_no_metric(completed, synthetic_root, caplog):
    """Resumed from the checkpoint of its last epoch, the run trains nothing and takes that
    epoch's metrics from the checkpoint: the same as the unbroken run's."""
    run, metrics = completed
    work = run.parent / "rewound"
    shutil.copytree(run, work)
    rewind_to_last_checkpoint(work)
    saved = checkpoints.load(work / "checkpoints" / "last.ckpt", "last")
    assert set(saved[resume.CHECKPOINT_KEY]["metrics"]) >= TRAINING_METRICS
    with caplog.at_level(logging.INFO):
        again = train(cfg_for(work, synthetic_root, *WITH_TRAINING_METRICS, "ckpt_path=last"))
    assert "resuming from" in caplog.text
    assert without_time(again) == without_time(metrics)
    assert records.read(work).status == records.COMPLETED


def test_a_damaged_metrics_file_is_rewritten_from_the_record(completed, synthetic_root, caplog):
    run, metrics = completed
    work = run.parent / "damaged"
    shutil.copytree(run, work)
    (work / records.METRICS_FILE).write_text('{"val/mse": ')
    with caplog.at_level(logging.WARNING):
        again = train(cfg_for(work, synthetic_root, *WITH_TRAINING_METRICS, "ckpt_path=last"))
    assert again == metrics == records.read_metrics(work)
    lines = [r.getMessage() for r in caplog.records if "metrics.json" in r.getMessage()]
    assert lines == [f"{work}: its metrics.json was missing or damaged; rewritten from job.json"]


def test_a_completed_record_without_metrics_runs_again_to_write_them(
    completed, synthetic_root, caplog
):
    run, metrics = completed
    work = run.parent / "no_metrics"
    shutil.copytree(run, work)
    record = records.read(work)
    record.metrics = None
    records.write(work, record)
    (work / records.METRICS_FILE).unlink()
    # the summary does not call it completed meanwhile
    assert collect.job_row(work, work.parent)["status"] == "incomplete"
    with caplog.at_level(logging.WARNING):
        again = train(cfg_for(work, synthetic_root, *WITH_TRAINING_METRICS, "ckpt_path=last"))
    assert "its record says completed but its metrics.json is missing" in caplog.text
    assert without_time(again) == without_time(metrics) == without_time(records.read_metrics(work))
    assert records.read(work).status == records.COMPLETED


@pytest.mark.parametrize(
    "text",
    [
        '{"status": "done"}',
        '{"status": "completed", "latent": [8]}',
        '{"status": "completed", "overrides": "latent=8"}',
        '{"status": "running", "wall_s": "long"}',
        '{"status": "completed", "attempts": 5}',
        '{"status": "completed", "metrics": {"test/mse": "low"}}',
        "[1, 2]",
        '{"status": ',
    ],
)
def test_an_odd_record_is_no_record_and_the_summary_still_builds(tmp_path, text):
    sweep = tmp_path / "sweep"
    job = sweep / "latent=8"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("- latent=8\n")
    (job / records.JOB_FILE).write_text(text)
    (job / records.METRICS_FILE).write_text('{"test/mse": 0.5}')
    record, why = records.inspect(job)
    assert record is None and why
    rows = report.summarize(sweep, [])
    assert [r["status"] for r in rows] == ["incomplete"]


def test_a_sweep_job_with_an_odd_record_is_set_aside_and_runs_afresh(
    tmp_path, synthetic_root, caplog
):
    job = tmp_path / "sweep" / "latent=2"
    job.mkdir(parents=True)
    (job / records.JOB_FILE).write_text('{"status": "completed", "identity": 7}')
    (job / records.METRICS_FILE).write_text('{"test/mse": 0.5}')
    with caplog.at_level(logging.INFO):
        metrics = train(cfg_for(job, synthetic_root, "latent=2", multirun=True))
    assert "its job.json cannot be trusted (its identity has odd values)" in caplog.text
    assert (tmp_path / "sweep" / "latent=2.superseded-1" / records.METRICS_FILE).is_file()
    assert records.read(job).status == records.COMPLETED
    assert records.read_metrics(job) == metrics and metrics["test/mse"] != 0.5


def test_a_dangling_superseded_link_never_makes_a_changed_job_report_old_metrics(
    tmp_path, synthetic_root
):
    sweep = tmp_path / "sweep"
    job = sweep / "latent=2"
    old = train(cfg_for(job, synthetic_root, "latent=2", "seed=1", multirun=True))
    (sweep / "latent=2.superseded-1").symlink_to(tmp_path / "gone")
    new = train(cfg_for(job, synthetic_root, "latent=2", "seed=2", multirun=True))
    assert without_time(new) != without_time(old)
    assert records.read_metrics(job) == new and records.read(job).config["seed"] == 2
    assert json.loads((sweep / "latent=2.superseded-2" / records.METRICS_FILE).read_text()) == old


def test_a_completed_sweep_job_is_skipped_with_its_files_untouched(
    tmp_path, synthetic_root, capsys
):
    job = tmp_path / "sweep" / "latent=2"
    metrics = train(cfg_for(job, synthetic_root, "latent=2", multirun=True))
    before = files(job)
    assert train(cfg_for(job, synthetic_root, "latent=2", multirun=True)) == metrics
    assert lifecycle.skipped() and files(job) == before


def test_a_run_restarted_afresh_overwrites_best_ckpt_rather_than_adding_best_v1(
    tmp_path, synthetic_root
):
    """A run stopped before it completed and started again without ckpt_path (or after its
    damaged last.ckpt was set aside) trains afresh: its best model is best.ckpt, not best-v1."""
    run = tmp_path / "run"
    cfg = cfg_for(run, synthetic_root, "callbacks=default", "~callbacks.latent_map")
    with open_dict(cfg):
        cfg.callbacks = {"model_checkpoint": cfg.callbacks.model_checkpoint}
    train(cfg)
    best = run / "checkpoints" / "best.ckpt"
    first = torch.load(best, weights_only=True)["state_dict"]
    record = records.read(run)
    record.status = records.RUNNING  # stopped before it completed
    records.write(run, record)
    cfg = cfg_for(run, synthetic_root, "callbacks=default", "seed=5")
    with open_dict(cfg):
        cfg.callbacks = {"model_checkpoint": cfg.callbacks.model_checkpoint}
    train(cfg)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    second = torch.load(best, weights_only=True)["state_dict"]
    assert any(not torch.equal(first[k], second[k]) for k in first)
    assert records.read(run).fit.checkpoint == os.path.join("checkpoints", "best.ckpt")


def test_the_default_run_folder_is_claimed_once_per_run(tmp_path):
    taken = tmp_path / "outputs" / "2026-01-01" / "12-00-00"
    taken.mkdir(parents=True)
    folder, made = run_dir.claim(str(taken), "hydra.run.dir")
    assert folder == taken.with_name("12-00-00-1") and made == folder and folder.is_dir()
    assert run_dir.claim(str(taken), "hydra.run.dir")[0] == taken.with_name("12-00-00-2")
    fresh = tmp_path / "outputs" / "2026-01-02" / "09-00-00"
    assert run_dir.claim(str(fresh), "hydra.run.dir") == (fresh, fresh.parent)


def test_a_single_run_on_the_default_folder_takes_a_free_one(tmp_path, synthetic_root):
    default = tmp_path / "outputs" / "day" / "time"
    default.mkdir(parents=True)  # made by a run started in the same second, completed since
    records.write(default, records.JobRecord(records.COMPLETED, "0" * 16))
    records.write_metrics(default, {"test/mse": 0.5})
    cfg = cfg_for(tmp_path / "unused", synthetic_root)
    with read_write(cfg.hydra.run):
        cfg.hydra.run.dir = str(default)
    SingleRun().on_run_start(cfg)
    assert cfg.hydra.run.dir == str(default.with_name("time-1"))
    assert default.with_name("time-1").is_dir()


def test_a_second_process_in_a_running_folder_stops_in_one_line(tmp_path, synthetic_root):
    """The folder is held while its run lives: the same hydra.run.dir given to a second process
    stops it before it reads or writes a record (the lock is on the folder: no file in it)."""
    import fcntl

    run = tmp_path / "run"
    run.mkdir()
    (run / records.JOB_FILE).write_text('{"status": "running"}')
    fd = os.open(run, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # this process stands for the live run
    try:
        with pytest.raises(lifecycle.RunInUseError, match=rf"^{run} is being run by another"):
            train(cfg_for(run, synthetic_root, "ckpt_path=last"))
    finally:
        os.close(fd)
    assert [p.name for p in run.iterdir()] == [records.JOB_FILE]
    assert (run / records.JOB_FILE).read_text() == '{"status": "running"}'
