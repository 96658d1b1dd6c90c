"""The README's first command on a fresh clone: ``make setup`` records the data folder it found,
so ``.venv/bin/python -m ae_lab`` reads it without an export, and its console is what a user
reads first (each line once, no adverts, a summary block at the end); elsewhere torchvision
downloads into ``./data``, and a download that fails leaves the data folder as it found it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import threading
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ae_lab.core.errors import AeLabError
from ae_lab.data import ImageDataModule
from ae_lab.data import files as files_mod
from ae_lab.data import root as root_mod
from ae_lab.data.definition import definition
from ae_lab.data.files import load_raw, torchvision_class
from ae_lab.reporting import metrics
from tests.conftest import REPO, compose_cfg, write_mnist

NAMES = sorted(n for pair in files_mod.RAW_FILES.values() for n in pair)

# --- data.root's default


@pytest.fixture
def venv(tmp_path, monkeypatch) -> Path:
    """This Python's prefix as a venv of its own, without AE_LAB_DATA_DIR in the environment."""
    prefix = tmp_path / "venv"
    prefix.mkdir()
    monkeypatch.setattr(sys, "prefix", str(prefix))
    monkeypatch.delenv("AE_LAB_DATA_DIR", raising=False)
    return prefix


def test_data_root_is_the_folder_make_setup_recorded(tmp_path, venv) -> None:
    shared = tmp_path / "shared" / "data"
    shared.mkdir(parents=True)
    (venv / root_mod.RECORD).write_text(f"{shared}\n")
    assert compose_cfg().data.root == str(shared)


def test_the_environment_wins_over_the_record(tmp_path, venv, monkeypatch) -> None:
    (venv / root_mod.RECORD).write_text(f"{tmp_path}\n")
    monkeypatch.setenv("AE_LAB_DATA_DIR", "/elsewhere")
    assert compose_cfg().data.root == "/elsewhere"
    assert compose_cfg(f"data.root={tmp_path}/mine").data.root == f"{tmp_path}/mine"


@pytest.mark.parametrize("record", [None, "", "/no/such/folder"])
def test_without_a_usable_record_data_root_is_data(venv, record) -> None:
    if record is not None:
        (venv / root_mod.RECORD).write_text(record)
    assert compose_cfg().data.root == "data"


# --- downloads


def fake_download(fail: bool):
    """A torchvision download that writes the dataset's four raw files (synthetic ones) and then
    fails, leaving a partial archive, or succeeds."""

    def download(self) -> None:
        raw = Path(self.raw_folder)
        write_mnist(raw.parent.parent, n_train=60, n_test=20, folder=raw.parent.name)
        if fail:
            (raw / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b partial")
            raise RuntimeError("Error downloading t10k-images-idx3-ubyte.gz:\n<urlopen error>")

    return download


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist"])
def test_a_failed_download_leaves_no_folder_file_or_lock(tmp_path, monkeypatch, dataset) -> None:
    cls = torchvision_class(definition(dataset))
    monkeypatch.setattr(cls, "download", fake_download(fail=True))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AeLabError, match="the download failed: Error downloading"):
        ImageDataModule(dataset, root="data").prepare_data()
    assert tree(tmp_path) == []  # not even ./data


def test_a_download_stopped_by_ctrl_c_leaves_nothing_either(tmp_path, monkeypatch) -> None:
    write_then_stop = fake_download(fail=False)

    def stopped(self) -> None:
        write_then_stop(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(torchvision_class(definition("mnist")), "download", stopped)
    with pytest.raises(KeyboardInterrupt):
        load_raw("mnist", tmp_path / "data", train=True)
    assert tree(tmp_path) == []


def test_a_failed_download_keeps_what_was_there(tmp_path, monkeypatch) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "notes.txt").write_text("mine")
    (tmp_path / "KMNIST").mkdir()
    before = tree(tmp_path)
    mnist = torchvision_class(definition("mnist"))
    monkeypatch.setattr(mnist, "download", fake_download(fail=True))
    with pytest.raises(AeLabError, match=f"MNIST files not found in {raw}"):
        load_raw("mnist", tmp_path, train=True)
    assert tree(tmp_path) == before


def test_a_download_that_works_leaves_its_files_and_no_lock(tmp_path, monkeypatch) -> None:
    mnist = torchvision_class(definition("mnist"))
    monkeypatch.setattr(mnist, "download", fake_download(fail=False))
    monkeypatch.chdir(tmp_path)
    images, labels = load_raw("mnist", "data", train=False)
    assert len(images) == len(labels) == 20
    assert tree(tmp_path / "data") == ["MNIST", "MNIST/raw", *(f"MNIST/raw/{n}" for n in NAMES)]


def test_a_lock_file_left_by_an_older_version_is_cleared(tmp_path) -> None:
    write_mnist(tmp_path, n_train=60, n_test=20)
    (tmp_path / "MNIST" / ".download.lock").touch()
    assert len(load_raw("mnist", tmp_path, train=True)[0]) == 60
    assert not (tmp_path / "MNIST" / ".download.lock").exists()


def test_a_job_that_waited_on_a_removed_lock_takes_the_new_one(tmp_path) -> None:
    """Two downloads never run at once, though each removes its lock file when done."""
    lock = tmp_path / "MNIST" / ".download.lock"
    inside: list[str] = []
    order: list[str] = []

    def job(name: str) -> None:
        with files_mod._download_lock(lock):
            inside.append(name)
            assert len(inside) == 1 and lock.exists()
            time.sleep(0.2)
            order.append(name)
            inside.remove(name)

    threads = [threading.Thread(target=job, args=(str(i),)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(order) == ["0", "1", "2"]
    assert not lock.exists()


# --- the README's first command, as printed, on a fresh clone


def first_command() -> str:
    """The first command of README.md's "Get going", without its comment."""
    readme = (REPO / "README.md").read_text()
    block = readme.split("## Get going", 1)[1].split("```bash\n", 1)[1]
    return block.splitlines()[0].split("#", 1)[0].strip()


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, mnist_root) -> SimpleNamespace:
    """The README's first command with ``debug=tiny threads=1``, as a user starts it (progress
    bar on) on a fresh clone: a checkout with ``../shared/data`` beside it and nothing exported;
    ``make setup`` (its venv already built, so no package is installed) records the folder."""
    tmp_path = tmp_path_factory.mktemp("first")
    command = first_command()
    clone = tmp_path / "clone"
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, clone / name)
    (tmp_path / "shared" / "data" / "MNIST").mkdir(parents=True)
    (tmp_path / "shared" / "data" / "MNIST" / "raw").symlink_to(mnist_root / "MNIST" / "raw")
    # the venv `make setup` builds, with this test's packages in place of pip's downloads; the
    # clone's own ae_lab comes first (python -m puts the working folder first on the path)
    venv = [sys.executable, "-m", "venv", "--without-pip", str(clone / ".venv")]
    subprocess.run(venv, check=True)
    site = sysconfig.get_path("purelib", vars={"base": str(clone / ".venv")})
    packages = [p for p in sys.path if p.endswith("site-packages")]
    Path(site, "test-packages.pth").write_text("\n".join(packages) + "\n")
    (clone / ".venv" / ".installed").touch()
    os.utime(clone / "pyproject.toml", (0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("AE_LAB_DATA_DIR", "PYTHONPATH")}
    proc = subprocess.run(
        ["bash", "-c", f"{command} debug=tiny threads=1"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    (run_dir,) = (clone / "outputs").glob("*/*")
    return SimpleNamespace(
        command=command,
        proc=proc,
        out=proc.stdout + proc.stderr,
        clone=clone,
        shared=(tmp_path / "shared" / "data").resolve(),
        run_dir=run_dir,
    )


@pytest.mark.integration
def test_the_readmes_first_command_runs_on_a_fresh_clone(first_run) -> None:
    assert first_run.command == "make setup && .venv/bin/python -m ae_lab"
    clone, shared = first_run.clone, first_run.shared
    assert (clone / ".venv" / root_mod.RECORD).read_text().strip() == str(shared)
    assert f"MNIST from {shared}/MNIST/raw:" in first_run.out
    assert np.isfinite(json.loads((first_run.run_dir / "metrics.json").read_text())["test/mse"])
    assert not (clone / "data").exists()  # nothing downloaded, nothing left
    assert not re.search(r"download", first_run.proc.stderr, re.IGNORECASE)


# --- what the first run prints: the console a user reads first

# Hydra's console format, and Lightning's own handler's, around a log record's message
PREFIX = re.compile(r"^(\[[^]]*\]\[[^]]*\]\[[A-Z]+\] - |INFO: )")


@pytest.mark.integration
def test_each_line_once_and_no_adverts_or_tables(first_run):
    messages = [
        PREFIX.sub("", line).strip()
        for line in first_run.out.split("\n")
        if not any(bar in line for bar in ("\r", "it/s", "\x1b"))  # the bar's redraws
    ]
    repeated = [m for m, n in Counter(messages).items() if n > 1 and m and not set(m) <= {"-", " "}]
    assert repeated == []
    assert "litlogger" not in first_run.out and "Tip:" not in first_run.out
    assert "Test metric" not in first_run.out  # Lightning's table of every test metric
    # the model summary lists layers, not the metric objects, and no FLOPs nobody counted
    assert "| encoder" in first_run.out
    assert "val_mse" not in first_run.out and "FLOPs" not in first_run.out


@pytest.mark.integration
def test_a_run_ends_with_its_headline_metrics_folder_and_tensorboard_command(first_run):
    out, run_dir = first_run.out, first_run.run_dir
    block = out[out.rindex("run finished:") :]
    assert re.search(rf"^  {re.escape(metrics.RATIO)} +\d", block, re.M)
    assert re.search(r"^  test/mse +\d", block, re.M)
    assert f"run folder: {run_dir}" in block
    [command] = re.findall(r"curves and figures: (.+)", block)
    assert "tensorboard" in command and command.endswith(f" --logdir {run_dir}")
    assert "test: test/loss=" not in out  # the one-line summary it replaces
