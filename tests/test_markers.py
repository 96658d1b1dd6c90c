"""The markers are true to their names: a unit test (no ``integration`` marker) that starts the
entrypoint in a subprocess, reaches the network or asks for the real MNIST (as a fixture, or for
an in-process run) fails, so ``make test-fast`` runs offline, starts no entrypoint process and
reads no real MNIST wherever it runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from ae_lab.data import MNISTDataModule
from tests.conftest import (
    _GUARD,
    REAL_DATA,
    compose_cfg,
    run_ae_lab,
    run_in_process,
    sweep_in_process,
)

GUARDED = pytest.fail.Exception


def test_a_unit_test_cannot_start_the_entrypoint(tmp_path: Path) -> None:
    with pytest.raises(GUARDED, match="starts the entrypoint in a subprocess"):
        run_ae_lab("--help", cwd=tmp_path, data_root=tmp_path)
    console_script = "import sys; from ae_lab.run.cli import main; main()"
    with pytest.raises(GUARDED, match="starts the entrypoint"):
        subprocess.run([sys.executable, "-c", console_script, "--help"], check=False)
    # any other subprocess is the test's business
    assert subprocess.run([sys.executable, "-c", "import ae_lab"]).returncode == 0


@pytest.mark.parametrize(
    "reach",
    [
        lambda: socket.getaddrinfo("yann.lecun.com", 80),
        lambda: socket.create_connection(("192.0.2.1", 80), timeout=0.1),  # an address by number
        lambda: MNISTDataModule(root="mnist", download=True).prepare_data(),
    ],
    ids=["name", "address", "mnist_download"],
)
def test_a_unit_test_cannot_reach_the_network(reach, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(GUARDED, match="reaches the network"):
        reach()


def test_the_loopback_is_no_network() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        socket.create_connection(server.getsockname(), timeout=5).close()


def test_a_unit_test_sees_no_data_where_the_config_looks(tmp_path) -> None:
    root = Path(compose_cfg().data.root)
    assert root == Path(os.environ["AE_LAB_DATA_DIR"]) and list(root.iterdir()) == []


def test_a_unit_test_asking_for_the_real_mnist_fails_before_it_runs(request) -> None:
    unmarked = SimpleNamespace(
        nodeid="test_x", fixturenames=["mnist_root"], get_closest_marker=lambda name: None
    )
    with pytest.raises(GUARDED, match="test_x uses the real MNIST: mark it integration"):
        request.config.stash[_GUARD].start(unmarked)


def test_a_unit_test_cannot_run_the_entrypoint_in_process_on_the_real_mnist(tmp_path) -> None:
    for run in (
        lambda: run_in_process(run_dir=tmp_path / "run", data_root=REAL_DATA),
        lambda: sweep_in_process("latent=2", sweep_dir=tmp_path / "sweep", data_root=REAL_DATA),
    ):
        with pytest.raises(GUARDED, match="runs the entrypoint on the real MNIST"):
            run()
    assert list(tmp_path.iterdir()) == []  # stopped before anything was written
