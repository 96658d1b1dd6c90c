"""Scaling out: the ``ae-lab`` command, submitit and Optuna sweeps (through the real entrypoint)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from ae_lab.cli import hoist_multirun
from tests.conftest import REPO, TINY, run_ae_lab

FAST = (*TINY, "threads=1", "callbacks=none", "logger=none")


def test_multirun_flag_moves_to_the_front_once() -> None:
    assert hoist_multirun(["model=ae", "-m", "latent=2,8", "--multirun"]) == [
        "--multirun",
        "model=ae",
        "latent=2,8",
    ]
    assert hoist_multirun(["latent=2"]) == ["latent=2"]


def console_script() -> tuple[str, ...]:
    """``python -c`` running what the installed ``ae-lab`` script runs, read from pyproject."""
    target = re.search(r'^ae-lab = "(.+)"$', (REPO / "pyproject.toml").read_text(), re.M)
    module, func = target.group(1).split(":")
    return ("-c", f"import sys; sys.argv[0] = 'ae-lab'; from {module} import {func}; {func}()")


def job_dirs(sweep: Path) -> list[Path]:
    return sorted(p.parent for p in sweep.glob("*/job.json"))


@pytest.mark.integration
def test_submitit_local_sweep_through_the_console_script(tmp_path: Path, mnist_root: Path) -> None:
    sweep = tmp_path / "sweep"
    run_ae_lab(
        "model=ae",
        "-m",
        "latent=2,4",
        "hydra/launcher=submitit_local",
        f"hydra.sweep.dir={sweep}",
        *FAST,
        cwd=tmp_path,
        data_root=mnist_root,
        entry=console_script(),
    )
    jobs = job_dirs(sweep)
    assert len(jobs) == 2
    assert {json.loads((j / "job.json").read_text())["status"] for j in jobs} == {"completed"}
    assert all((j / "metrics.json").exists() for j in jobs)
    assert (sweep / ".submitit").is_dir()  # the jobs went through submitit
    assert "| latent=4 | completed | 4 |" in (sweep / "summary.md").read_text()


@pytest.mark.integration
def test_optuna_search_writes_the_best_trial(tmp_path: Path, mnist_root: Path) -> None:
    sweep = tmp_path / "search"
    proc = run_ae_lab(
        "hparams_search=optuna",
        "model=sparse_ae",
        "hydra.sweeper.n_trials=3",
        f"hydra.sweep.dir={sweep}",
        *FAST,
        cwd=tmp_path,
        data_root=mnist_root,
    )
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert set(best["best_params"]) == {"optimizer.lr", "data.batch_size", "model.weight"}
    assert 1e-4 <= best["best_params"]["optimizer.lr"] <= 1e-2
    jobs = job_dirs(sweep)
    assert len(jobs) == 3
    val_mse = [json.loads((j / "metrics.json").read_text())["val/mse"] for j in jobs]
    assert best["best_value"] == pytest.approx(min(val_mse))
    assert "Best value" in proc.stdout + proc.stderr
    assert (sweep / "summary.md").read_text().count("| completed |") == 3
