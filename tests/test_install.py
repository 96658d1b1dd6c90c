"""A regular install (``pip install .``, not editable) carries the configs: ``ae-lab``,
``ae-lab-eval`` and ``python -m ae_lab`` run from any folder, and a user's own config folder
adds to them (``--config-dir``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, TINY

pytestmark = pytest.mark.integration
# what a source distribution holds: the package, its configs, the sweeper plugin, the metadata
SOURCES = ("pyproject.toml", "setup.py", "README.md", "ae_lab", "conf", "hydra_plugins")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """ae_lab built from a copy of this checkout and installed into a folder of its own, as
    ``pip install .`` does (offline: the dependencies are the test's environment's)."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"
    source.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(
                REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(REPO / name, source / name)
    target = root / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*pip, "--no-compile", "--target", str(target), str(source)], check=True)
    return target


def run_installed(installed: Path, args: list[str], cwd: Path, data_root: Path):
    """A command with the installed ae_lab, and not this checkout, on the path."""
    env = {**os.environ, "PYTHONPATH": str(installed), "AE_LAB_DATA_DIR": str(data_root)}
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def test_the_console_script_runs_from_any_folder_with_a_users_own_model(
    installed, tmp_path, mnist_root
) -> None:
    mine = tmp_path / "my_conf"
    (mine / "model").mkdir(parents=True)
    (mine / "model" / "narrow_ae.yaml").write_text(
        "_target_: ae_lab.models.DenseAE\nlatent_dim: ${latent}\nhidden: [16]\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    args = [str(installed / "bin" / "ae-lab"), "--config-dir", str(mine), "model=narrow_ae"]
    run_installed(
        installed,
        [*args, "latent=3", "threads=1", "callbacks=none", "logger=none", *TINY],
        elsewhere,
        mnist_root,
    )
    (run,) = (elsewhere / "outputs").glob("*/*")  # in the folder it was started from
    assert yaml.safe_load((run / ".hydra" / "config.yaml").read_text())["model"]["hidden"] == [16]
    hydra = yaml.safe_load((run / ".hydra" / "hydra.yaml").read_text())["hydra"]
    sources = {(s["schema"], s["path"]) for s in hydra["runtime"]["config_sources"]}
    assert {("pkg", "ae_lab.conf"), ("file", str(mine))} <= sources  # the package's, and mine
    assert (run / "metrics.json").is_file()


def test_python_m_ae_lab_and_the_eval_script_find_the_packaged_configs(
    installed, tmp_path, mnist_root
) -> None:
    proc = run_installed(
        installed, [sys.executable, "-m", "ae_lab", "--info", "searchpath"], tmp_path, mnist_root
    )
    assert "pkg://ae_lab.conf" in proc.stdout
    assert str(REPO) not in proc.stdout  # not this checkout's conf/
    proc = run_installed(
        installed, [str(installed / "bin" / "ae-lab-eval"), "--help"], tmp_path, mnist_root
    )
    assert "ae-lab-eval" in proc.stdout and "transform=mask" in proc.stdout
