"""logger=mlflow and logger=wandb: each gets the scalars, the figures and the hyperparameters with
the final metrics, read back as a user would (MLflow's client on its SQLite store; W&B's offline
run files); a Python without a logger's package is told which to install, before any work."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import pytest

from ae_lab.config import validation
from ae_lab.core.errors import AeLabError
from tests.conftest import TINY, compose_cfg, sweep_in_process

EPOCHS = 2
SWEPT = ("ae", "vae")


def test_a_logger_whose_package_is_missing_is_named_with_the_pip_command(monkeypatch):
    cfg = compose_cfg("logger=[tensorboard,mlflow]")
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a)
    )
    with pytest.raises(AeLabError) as err:
        validation.check_environment(cfg)
    assert str(err.value) == (
        "logger.mlflow needs the mlflow package, which this Python lacks: pip install mlflow "
        "(or pip install 'ae_lab[trackers]')"
    )
    monkeypatch.setattr(importlib.util, "find_spec", real)
    validation.check_environment(cfg)  # installed: no complaint


def test_mlflow_and_wandb_name_a_run_after_its_overrides():
    cfg = compose_cfg("logger=[mlflow,wandb]", "model=vae", "latent=8", run_dir="/tmp/x/12-00-00")
    assert cfg.logger.mlflow.run_name == cfg.logger.wandb.name == "model=vae,latent=8"
    assert cfg.logger.mlflow.tracking_uri.startswith("sqlite:////")  # an absolute file


def test_mlflow_makes_its_sqlite_store_under_a_lock(monkeypatch, tmp_path):
    """The jobs of a parallel sweep make the store's tables and experiment one at a time (two at
    once fail in alembic), in a folder made if missing."""
    import filelock

    from ae_lab.callbacks import loggers
    from ae_lab.reporting.mlflow_view import shared_view

    events = []

    class Lock:
        def __init__(self, path):
            events.append(("lock", path))

        def __enter__(self):
            events.append("acquired")

        def __exit__(self, *exc):
            events.append("released")

    class Client:
        def get_experiment(self, experiment_id):
            return type("Experiment", (), {"tags": {}})

        def set_experiment_tag(self, experiment_id, key, value):
            events.append(("tagged", key, value))

    class Logger:
        experiment_id = "1"

        def __init__(self, **kwargs):
            events.append(("made", kwargs["tracking_uri"]))

        @property
        def experiment(self):
            events.append("experiment")
            return Client()

    monkeypatch.setattr(filelock, "FileLock", Lock)
    monkeypatch.setattr(loggers, "MLFlowLogger", Logger)
    db = tmp_path / "new" / "runs.db"
    loggers.mlflow_logger(f"sqlite:///{db}", experiment_name="ae_lab")
    assert events == [
        ("lock", f"{db}.lock"),
        "acquired",
        ("made", f"sqlite:///{db}"),
        "experiment",
        ("tagged", "mlflow.experimentKind", "custom_model_development"),
        ("tagged", "mlflow.sharedViewState.model-vs-pca", shared_view()),
        "released",
    ]
    assert db.parent.is_dir()


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, mnist_root) -> dict:
    """A tiny sweep of two jobs (in this process, as the basic launcher runs them) with both
    loggers, its MLflow store in a folder of its own."""
    cwd = tmp_path_factory.mktemp("trackers")
    store = cwd / "store" / "runs.db"
    sweep_in_process(
        "model=ae,vae",
        *TINY,
        f"trainer.max_epochs={EPOCHS}",
        "threads=1",
        "logger=[mlflow,wandb]",
        f"logger.mlflow.tracking_uri=sqlite:///{store}",
        sweep_dir=cwd / "multirun" / "day" / "time",
        data_root=mnist_root,
    )
    import wandb

    if wandb.run is not None:  # the last job's run, which W&B closes as the sweep's process exits
        wandb.finish()
    run_dirs = sorted(p.parent for p in cwd.glob("multirun/*/*/*/metrics.json"))
    assert len(run_dirs) == len(SWEPT)
    return {"cwd": cwd, "uri": f"sqlite:///{store}", "run_dirs": run_dirs}


def _recorded(run_dir: Path) -> dict[str, float]:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.integration
def test_mlflow_has_each_run_with_params_metrics_and_figures(tracked):
    from mlflow import MlflowClient

    client = MlflowClient(tracked["uri"])
    runs = client.search_runs([client.get_experiment_by_name("ae_lab").experiment_id])
    by_dir = {Path(run.data.tags["run_dir"]): run for run in runs}
    assert sorted(by_dir) == tracked["run_dirs"]  # one store, one run per job
    assert sorted(run.data.params["model"] for run in runs) == sorted(SWEPT)
    for run_dir, run in by_dir.items():
        assert run.info.run_name == run_dir.name and run.info.status == "FINISHED"
        params, metrics = run.data.params, run.data.metrics
        assert (params["latent"], params["max_epochs"]) == ("32", str(EPOCHS))
        assert int(params["n_params"]) > 0
        # one point per epoch: the final metrics add none to a curve
        assert len(client.get_metric_history(run.info.run_id, "val/mse")) == EPOCHS
        assert metrics["test/mse"] == pytest.approx(_recorded(run_dir)["test/mse"])
        ratio = metrics["test/mse"] / metrics["pca/test_mse"]
        assert metrics["test/mse_ratio"] == pytest.approx(ratio)
        artifacts = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "figures")}
        assert artifacts == {p.name for p in (run_dir / "figures").glob("*.png")}
        assert {"reconstructions.png", "latent_map.png"} <= artifacts


@pytest.fixture
def mlflow_server(tracked):
    """``mlflow server`` (what ``mlflow ui`` starts) on the run's store, on a free loopback port,
    without its job workers; stopped with every process it started."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tracked["cwd"] / "mlflow_server.log"
    with log.open("w") as err:
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", tracked["uri"]]
            + ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            cwd=tracked["cwd"],
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,  # its own process group: uvicorn's worker goes with it
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                pytest.fail(f"mlflow server exited:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("mlflow server did not answer within 180 s")
                time.sleep(0.25)
        yield url
    finally:  # a scratch store: nothing to shut down gracefully, and no seconds to spend on it
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


@pytest.mark.integration
def test_mlflow_ui_serves_the_store(mlflow_server, tracked):
    """The store is readable by MLflow's own server (mlflow 3.17 and later fail to start on the
    SQLAlchemy 1.4 that optuna needs), over its REST API as the UI reads it."""
    api = f"{mlflow_server}/api/2.0/mlflow"
    with urllib.request.urlopen(f"{api}/experiments/get-by-name?experiment_name=ae_lab") as answer:
        experiment = json.load(answer)["experiment"]["experiment_id"]
    search = urllib.request.Request(
        f"{api}/runs/search",
        data=json.dumps({"experiment_ids": [experiment]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(search, timeout=30) as answer:
        runs = json.load(answer)["runs"]
    names = sorted(run["info"]["run_name"] for run in runs)
    assert names == [run_dir.name for run_dir in tracked["run_dirs"]]


def wandb_records(run_file: Path) -> dict[str, list]:
    """The records of W&B's ``run-<id>.wandb`` file by kind (config, summary, history, ...).

    The file is LevelDB's log format behind a 7-byte header (``:W&B``, magic, version): 32 KiB
    blocks of chunks, each with a 7-byte header (CRC, length, type: 1 whole, 2 first, 3 middle,
    4 last); W&B's Python package no longer ships a reader, its protobuf records it does."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, block = run_file.read_bytes(), 32 * 1024
    assert data[:4] == b":W&B"
    out: dict[str, list] = defaultdict(list)
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == 0:  # zero padding at the end of the file
            break
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            out[record.WhichOneof("record_type")].append(record)
    return out


def _items(updates) -> dict:
    return {u.key or "/".join(u.nested_key): json.loads(u.value_json) for u in updates}


@pytest.mark.integration
def test_wandb_offline_runs_have_config_history_summary_and_images(tracked):
    models = []
    for run_dir in tracked["run_dirs"]:
        (offline,) = (run_dir / "wandb").glob("offline-run-*")  # a run of its own per job
        records = wandb_records(next(offline.glob("run-*.wandb")))
        (run,) = records["run"]
        assert (run.run.display_name, run.run.project) == (run_dir.name, "ae_lab")
        config = {k: v for r in records["config"] for k, v in _items(r.config.update).items()}
        assert (config["latent"], config["max_epochs"]) == (32, EPOCHS)
        models.append(config["model"])
        history = [_items(r.history.item) for r in records["history"]]
        assert len([h for h in history if "val/mse" in h]) == EPOCHS
        summary = {k: v for r in records["summary"] for k, v in _items(r.summary.update).items()}
        assert summary["test/mse"] == pytest.approx(_recorded(run_dir)["test/mse"])
        ratio = summary["test/mse"] / summary["pca/test_mse"]
        assert summary["test/mse_ratio"] == pytest.approx(ratio)
        media = offline / "files" / "media" / "images"
        images = {p.name.split("_")[0] for p in media.rglob("*.png")}
        assert {"reconstructions", "latent", "interpolations"} <= images
    assert sorted(models) == sorted(SWEPT)
