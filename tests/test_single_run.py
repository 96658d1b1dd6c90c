"""A single run's start and end belong to their own Hydra callback: its folder, its one-line
errors and the folder a config error leaves behind do not depend on the sweep summary."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

from ae_lab.core.errors import AeLabError, ConfigError
from ae_lab.run.single_run import SingleRun
from ae_lab.sweeps.sweep import SweepSummary
from tests.conftest import run_in_process


def run_config(folder: Path):
    hydra = {
        "run": {"dir": str(folder)},
        "output_subdir": ".hydra",
        "job": {"name": "train"},
        "runtime": {"output_dir": str(folder)},
    }
    return OmegaConf.create({"ckpt_path": None, "hydra": hydra})


def failed(err: BaseException) -> JobReturn:
    ret = JobReturn(status=JobStatus.FAILED)
    ret._return_value = err
    return ret


def test_the_sweep_summary_leaves_single_runs_alone():
    own = {"on_run_start", "on_run_end"}
    assert own <= {k for k, v in vars(SingleRun).items() if v is not getattr(Callback, k, None)}
    assert not own & set(vars(SweepSummary))


def test_a_config_error_ends_in_one_line_and_removes_the_folder_the_run_made(tmp_path, capsys):
    folder = tmp_path / "outputs" / "day" / "time"
    callback = SingleRun()
    callback.on_run_start(run_config(folder))
    assert folder.is_dir()
    (folder / ".hydra").mkdir()
    with pytest.raises(SystemExit) as stop:
        callback.on_run_end(run_config(folder), failed(ConfigError("latent must be >= 1")))
    assert stop.value.code == ConfigError.exit_code
    assert capsys.readouterr().err == "ae_lab: latent must be >= 1\n"
    assert list(tmp_path.iterdir()) == []


def test_another_failure_keeps_the_folder_and_a_bug_its_traceback(tmp_path, capsys):
    callback = SingleRun()
    callback.on_run_start(run_config(tmp_path / "run"))
    with pytest.raises(SystemExit) as stop:
        callback.on_run_end(run_config(tmp_path / "run"), failed(AeLabError("no GPU")))
    assert stop.value.code == AeLabError.exit_code and (tmp_path / "run").is_dir()
    # a bug is left to Hydra, which shows its traceback; a completed run is left alone
    callback.on_run_end(run_config(tmp_path / "run"), failed(ValueError("bug")))
    callback.on_run_end(run_config(tmp_path / "run"), JobReturn(status=JobStatus.COMPLETED))
    assert capsys.readouterr().err == "ae_lab: no GPU\n"


def test_without_the_sweep_summary_a_run_fails_as_before(tmp_path):
    run = run_in_process(
        "latent=0",
        "~hydra.callbacks.sweep_summary",
        run_dir=tmp_path / "outputs" / "run",
        data_root=tmp_path / "no_data",
        check=False,
    )
    assert run.code == ConfigError.exit_code
    assert run.err.splitlines() == [
        "ae_lab: latent must be a positive integer (the bottleneck size), e.g. latent=8, got 0"
    ]
    assert "sweep_summary" not in run.cfg.hydra.callbacks
    assert list(tmp_path.iterdir()) == []
