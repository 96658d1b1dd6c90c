"""A sweep says where it is: each job starts with ``job k of n: <its overrides>``, ends with one
line, and shows little else on the console; the job's log file keeps the rest."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict, read_write

from ae_lab.callbacks.progress_and_summary import ProgressBar
from ae_lab.core import attempts, records
from ae_lab.core.identity import resolved_identity
from ae_lab.reporting import metrics as headline
from ae_lab.sweeps.console import JOBS_KEY, SweepConsole, SweepJobConsole, job_count
from tests.conftest import TINY, compose_cfg, sweep_in_process

# the synthetic files' 600 training images, one thread, no logger
SMALL = ("data.val_size=100", "threads=1", "logger=none")
BASIC = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def sweep_config(task: list[str], sweeper: dict):
    return OmegaConf.create({"hydra": {"overrides": {"task": task}, "sweeper": sweeper}})


@pytest.mark.parametrize(
    "task, params",
    [
        (["latent=2,4,8", "model=ae,vae", "threads=1"], {}),
        (["latent=2,4"], {"seed": "0,1,2", "model": "ae"}),
        (["latent=8"], {"latent": "2,4"}),  # the command line wins over the params
        (["latent=range(2,33,2)"], {}),
        (["model=ae"], {}),
    ],
)
def test_the_size_of_a_basic_sweep_is_its_number_of_combinations(task, params) -> None:
    values: dict[str, int] = {}
    for line in [f"{k}={v}" for k, v in params.items()] + task:
        key, value = line.split("=", 1)
        values[key] = len(range(2, 33, 2)) if value.startswith("range") else value.count(",") + 1
    expected = 1
    for n in values.values():
        expected *= n
    assert job_count(sweep_config(task, {"_target_": BASIC, "params": params})) == expected


def test_a_search_runs_n_trials_and_another_sweeper_an_unknown_number() -> None:
    optuna = {"_target_": "hydra_plugins.ae_lab.optuna_sweeper.AeLabOptunaSweeper", "n_trials": 7}
    assert job_count(sweep_config(["latent=8"], optuna)) == 7
    assert job_count(sweep_config(["latent=2,4"], {"_target_": "my.Sweeper"})) is None


def test_every_job_is_composed_with_the_sweeps_size(tmp_path) -> None:
    cfg = compose_cfg("latent=2", run_dir=tmp_path)
    with read_write(cfg.hydra.overrides):
        cfg.hydra.overrides.task = ["latent=2,4", "model=ae,vae"]
    SweepConsole().on_multirun_start(cfg)
    added = cfg.hydra.overrides.hydra[-1]
    assert added == f"++hydra.job.env_set.{JOBS_KEY}=4"
    # what Hydra's load_sweep_config composes each job with
    assert compose_cfg(added, run_dir=tmp_path).hydra.job.env_set[JOBS_KEY] == "4"


def job(tmp_path: Path, task: list[str], shared: list[str], num: int, n: str | None = "3"):
    """A sweep job's config, as Hydra hands it to the callbacks, with its run dir made."""
    out = tmp_path / "job"
    out.mkdir(exist_ok=True)
    cfg = compose_cfg(*task, run_dir=out)
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.mode = RunMode.MULTIRUN
        cfg.hydra.job.num = num
        if n is not None:
            cfg.hydra.job.env_set[JOBS_KEY] = n
        cfg.hydra.job.config.override_dirname.exclude_keys = shared
    HydraConfig.instance().set_config(cfg)
    return cfg, out


@pytest.fixture(autouse=True)
def _root_handlers_as_they_were():
    """``on_job_start`` filters every console handler on the root logger, pytest's own included
    here; each test gives them back their filters, so later tests' ``caplog`` sees every line."""
    handlers = {h: h.filters[:] for h in logging.getLogger().handlers}
    yield
    for handler, filters in handlers.items():
        handler.filters[:] = filters


@pytest.fixture
def console_handler():
    """A console handler on the root logger, as Hydra's job logging adds one."""
    handler = logging.StreamHandler()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


def test_a_job_starts_with_its_place_and_what_tells_it_apart(
    tmp_path, capsys, console_handler
) -> None:
    cfg, _ = job(tmp_path, ["latent=4", "threads=1", "model=vae"], ["threads"], num=1)
    SweepConsole().on_job_start(config=cfg)
    assert capsys.readouterr().out == "job 2 of 3: latent=4 model=vae\n"
    assert any(isinstance(f, SweepJobConsole) for f in console_handler.filters)


def test_without_a_known_size_a_job_says_its_number(tmp_path, capsys, console_handler) -> None:
    cfg, _ = job(tmp_path, ["latent=4"], [], num=4, n=None)
    SweepConsole().on_job_start(config=cfg)
    assert capsys.readouterr().out == "job 5: latent=4\n"


def test_a_job_ends_with_its_headline_metrics_and_log_file(tmp_path, capsys) -> None:
    cfg, out = job(tmp_path, ["latent=4", "threads=1"], ["threads"], num=0)
    values = {"test/mse": 0.0123, "pca/test_mse": 0.0456, "time/wall_s": 12.4, "val/mse": 0.3}
    records.write_metrics(out, values)
    callback = SweepConsole()
    callback.on_job_start(config=cfg)
    capsys.readouterr()
    callback.on_job_end(config=cfg, job_return=JobReturn(status=JobStatus.COMPLETED))
    shown = ", ".join(
        f"{k} {headline.find(k).format(v)}"
        for k, v in headline.select(values, headline.RUN_END).items()
    )
    assert "val/mse" not in shown and "test/mse_ratio" in shown
    assert capsys.readouterr().out == f"job 1 of 3 completed in 12 s: {shown}; details in {out}\n"


def test_a_job_continued_by_a_rerun_says_over_how_many_attempts(tmp_path, capsys) -> None:
    cfg, out = job(tmp_path, ["latent=4"], [], num=0)
    first = attempts.begin(out, None, None)
    attempts.finish(out, first, completed=False, error="stopped")
    second = attempts.begin(out, None, records.read(out))
    attempts.finish(out, second, completed=True)
    records.write_metrics(out, {"test/mse": 0.1, "time/wall_s": 30.0})
    SweepConsole().on_job_end(config=cfg, job_return=JobReturn(status=JobStatus.COMPLETED))
    assert capsys.readouterr().out.startswith("job 1 of 3 completed in 30 s over 2 attempts: ")


def test_a_failed_job_says_so_in_one_line(tmp_path, capsys) -> None:
    cfg, out = job(tmp_path, ["latent=0"], [], num=2)
    failed = JobReturn(status=JobStatus.FAILED, _return_value=ValueError("bad"))
    SweepConsole().on_job_end(config=cfg, job_return=failed)
    assert capsys.readouterr().out == f"job 3 of 3 failed; details in {out}\n"


def test_a_job_a_rerun_skips_says_so_once(tmp_path, capsys) -> None:
    cfg, out = job(tmp_path, ["latent=2"], [], num=0)
    record = attempts.begin(out, resolved_identity(cfg, out), None)
    attempts.finish(out, record, completed=True)
    records.write_metrics(out, {"test/mse": 0.1})
    callback = SweepConsole()
    callback.on_job_start(config=cfg)
    callback.on_job_end(config=cfg, job_return=JobReturn(status=JobStatus.COMPLETED))
    expected = "job 1 of 3: latent=2: completed in an earlier run of this sweep, skipped\n"
    assert capsys.readouterr().out == expected


def test_a_single_run_prints_no_job_lines(tmp_path, capsys, console_handler) -> None:
    cfg = compose_cfg("latent=2", run_dir=tmp_path)
    callback = SweepConsole()
    callback.on_job_start(config=cfg)
    callback.on_job_end(config=cfg, job_return=JobReturn(status=JobStatus.COMPLETED))
    assert capsys.readouterr().out == "" and console_handler.filters == []


@pytest.mark.parametrize(
    "name, level, shown",
    [
        ("ae_lab.run.train", logging.INFO, False),
        ("lightning.pytorch.utilities.rank_zero", logging.INFO, False),
        ("ae_lab.sweeps.sweep", logging.INFO, True),
        ("ae_lab.evaluation.pca", logging.WARNING, True),
        ("ae_lab.sweeps.sweep", logging.ERROR, True),
    ],
)
def test_a_sweep_jobs_console_shows_warnings_errors_and_the_sweeps_lines(name, level, shown):
    record = logging.LogRecord(name, level, __file__, 1, "a line", None, None)
    assert SweepJobConsole().filter(record) is shown


def test_the_progress_bar_of_a_sweep_job_shows_on_a_terminal_only(tmp_path, monkeypatch) -> None:
    compose_cfg(run_dir=tmp_path)
    assert ProgressBar().is_enabled  # a single run, whatever its console
    job(tmp_path, ["latent=2"], [], num=0)
    monkeypatch.setattr("sys.stdout.isatty", lambda: False)
    assert not ProgressBar().is_enabled
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    assert ProgressBar().is_enabled


def test_a_sweeps_console_has_a_few_lines_per_job(tmp_path, synthetic_root, monkeypatch) -> None:
    """Through the entrypoint, in this process: what a sweep prints, a failed job among them."""
    monkeypatch.chdir(tmp_path)  # the folder a user starts it in: paths shown relative to it
    args = ("latent=0,2,4", *TINY, *SMALL)
    sweep = tmp_path / "sweep"
    ended = sweep_in_process(*args, sweep_dir=sweep, data_root=synthetic_root, check=False)
    assert ended.code != 0  # latent=0 fails, and the sweep with it, after the other jobs
    out = ended.out
    starts = [line for line in out.splitlines() if re.match(r"job \d+ of \d+: ", line)]
    assert starts == ["job 1 of 3: latent=0", "job 2 of 3: latent=2", "job 3 of 3: latent=4"]
    assert "job 1 of 3 failed; details in sweep/latent=0/train.log" in out
    assert re.search(r"^job 3 of 3 completed in \d+ s: .*test/mse \S+.*; details in ", out, re.M)
    # each job's own lines between its start line and the next: the end line, the summary line,
    # Hydra's line for the next job, and warnings or errors only
    jobs = re.split(r"^job \d+ of 3: .*$", out, flags=re.M)[1:]
    for lines in jobs:
        info = [ln for ln in lines.splitlines() if ln.strip() and "[INFO]" in ln]
        assert all("sweep summary updated" in ln or "[HYDRA]" in ln for ln in info), info
    for detail in ("run finished", "Seed set to", "PCA baseline", "Trainable params"):
        assert detail not in out
        assert detail in (tmp_path / "sweep" / "latent=2" / "train.log").read_text()
    assert "sweep summary updated: 2 completed, 1 failed" in out  # a failed sweep ends there
    again = sweep_in_process("latent=2,4,8", *args[1:], sweep_dir=sweep, data_root=synthetic_root)
    skipped = "completed in an earlier run of this sweep, skipped"
    assert f"job 1 of 3: latent=2: {skipped}" in again.out
    assert f"job 2 of 3: latent=4: {skipped}" in again.out
    assert re.search(r"^job 3 of 3 completed in ", again.out, re.M)
    # the sweep's end line stays (the folder of latent=0 is still there)
    assert "sweep finished: 3 completed, 1 failed" in again.out
