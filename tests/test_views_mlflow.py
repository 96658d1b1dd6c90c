"""MLflow at a glance, read through ``mlflow server``'s REST API (what ``mlflow ui`` serves):
the experiment says it holds model training, runs are named as TensorBoard names them, the
model's and PCA's validation MSE are series on the same epochs, and a run logged only to MLflow
ends by pointing at MLflow alone, with commands that run from a fresh shell."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from hydra.types import RunMode

from ae_lab.callbacks.loggers import EXPERIMENT_KIND_TAG, MODEL_TRAINING
from ae_lab.config.resolvers import tracker_run_name
from tests.conftest import TINY, run_in_process, sweep_in_process

EPOCHS = 2
SINGLE = ("model=vae", "latent=8")


def test_a_single_run_is_named_by_its_overrides_and_a_sweep_job_by_its_folder():
    single = "/work/outputs/2026-01-01/12-00-00"
    named = tracker_run_name(single, RunMode.RUN, ["logger=mlflow", "model=vae", "latent=8"], "vae")
    assert named == "model=vae,latent=8"
    assert tracker_run_name(single, RunMode.RUN, ["logger=[mlflow,wandb]"], "ae") == "ae"
    evaluated = ["ckpt_path=/work/outputs/x/checkpoints/best.ckpt", "transform=mask"]
    assert tracker_run_name(single, RunMode.RUN, evaluated, "ae") == "transform=mask"
    job = "/work/multirun/2026-01-01/12-00-00/model=vae,latent=8"
    assert tracker_run_name(job, RunMode.MULTIRUN, ["model=vae"], "vae") == "model=vae,latent=8"


@pytest.fixture(scope="module")
def store(tmp_path_factory, mnist_root) -> dict:
    """A sweep of two jobs and a single run, logged to MLflow alone, from one folder: its
    ``mlflow.db`` holds them all."""
    cwd = tmp_path_factory.mktemp("views_mlflow")
    shared = (*TINY, f"trainer.max_epochs={EPOCHS}", "threads=1", "logger=mlflow")
    with pytest.MonkeyPatch.context() as here:  # the entrypoint in this process, started in cwd
        here.chdir(cwd)
        sweep = cwd / "multirun" / "sweep"
        swept = sweep_in_process("model=ae,vae", *shared, sweep_dir=sweep, data_root=mnist_root)
        single = run_in_process(*SINGLE, *shared, data_root=mnist_root)
    [run_dir] = cwd.glob("outputs/*/*")
    return {
        "cwd": cwd,
        "sweep": sweep,
        "run_dir": run_dir,
        "output": single.out + single.err,
        "sweep_output": swept.out + swept.err,
    }


@pytest.fixture(scope="module")
def rest(store):
    """``rest(path, body=None)``: MLflow's REST API, from ``mlflow server`` on the store (on a
    free loopback port, without its job workers); stopped with every process it started."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = store["cwd"] / "mlflow_server.log"
    with log.open("w") as err:
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", "sqlite:///mlflow.db"]
            + ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            cwd=store["cwd"],
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,  # its own process group: uvicorn's worker goes with it
        )
    api = f"http://127.0.0.1:{port}/api/2.0/mlflow"

    def call(path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{api}/{path}", data=data)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.load(answer)

    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, log.read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "mlflow server did not answer within 180 s"
                time.sleep(0.25)
        yield call
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def experiment(rest) -> dict:
    return rest("experiments/get-by-name?experiment_name=ae_lab")["experiment"]


def runs(rest) -> dict[str, dict]:
    found = rest("runs/search", {"experiment_ids": [experiment(rest)["experiment_id"]]})["runs"]
    return {run["info"]["run_name"]: run for run in found}


@pytest.mark.integration
def test_the_experiment_is_marked_as_model_training(rest):
    tags = {t["key"]: t["value"] for t in experiment(rest).get("tags", [])}
    assert tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING


@pytest.mark.integration
def test_runs_are_named_as_tensorboard_names_them(rest, store):
    names = set(runs(rest))
    jobs = {p.name for p in store["sweep"].iterdir() if (p / "job.json").exists()}
    assert jobs == {"model=ae", "model=vae"} and jobs <= names  # a sweep job: its folder
    [single] = names - jobs
    # a single run: its overrides (the logger left out), not the time its folder is named by
    assert single.startswith(",".join(SINGLE)) and "logger" not in single
    assert not re.fullmatch(r"\d\d-\d\d-\d\d", single) and single != store["run_dir"].name


def history(rest, run: dict, metric: str) -> list[tuple[int, float]]:
    query = urllib.parse.urlencode({"run_id": run["info"]["run_id"], "metric_key": metric})
    points = rest(f"metrics/get-history?{query}")["metrics"]
    return sorted((p["step"], p["value"]) for p in points)


@pytest.mark.integration
def test_model_and_pca_mse_are_series_on_the_same_epochs(rest, store):
    for name, run in runs(rest).items():
        model, pca = history(rest, run, "val/mse"), history(rest, run, "pca/val_mse")
        epochs = list(range(1, EPOCHS + 1))
        assert [s for s, _ in model] == [s for s, _ in pca] == epochs, name
        assert len({v for _, v in pca}) == 1  # PCA is fitted once: a flat line beside the curve
        assert [s for s, _ in history(rest, run, "test/mse")] == [EPOCHS]
        assert "step" not in {m["key"] for m in run["data"].get("metrics", [])}


@pytest.mark.integration
def test_a_run_logged_to_mlflow_alone_points_at_mlflow_alone(rest, store):
    block = store["output"][store["output"].index("run finished:") :]
    assert "tensorboard" not in block and "custom_scalars" not in block
    [command] = re.findall(r"MLflow: (.+)", block)
    assert command.endswith(f" ui --backend-store-uri sqlite:///{store['cwd']}/mlflow.db")
    [url] = re.findall(r"MLflow runs: (\S+)", block)
    assert f"/#/experiments/{experiment(rest)['experiment_id']}/runs?" in url
    assert "workflowType=machine_learning" in url  # the runs, not MLflow's GenAI view


@pytest.mark.integration
def test_the_printed_mlflow_command_runs_from_a_fresh_shell(store):
    """The executable of the printed command, run with a PATH that has no venv on it, from the
    folder the run was started from."""
    block = store["output"][store["output"].index("run finished:") :]
    [command] = re.findall(r"MLflow: (.+)", block)
    words = shlex.split(command)
    tool = words[: words.index("ui")]
    fresh = {"PATH": "/usr/bin:/bin", "HOME": str(store["cwd"])}
    proc = subprocess.run([*tool, "--version"], cwd=store["cwd"], env=fresh,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "version" in proc.stdout
    assert not Path(tool[0]).is_absolute() or Path(tool[0]).is_file()


@pytest.mark.integration
def test_a_sweep_logged_to_mlflow_alone_ends_by_pointing_at_its_store(store):
    [last] = [line for line in store["sweep_output"].splitlines() if "sweep finished:" in line]
    # the command, then the addresses of the runs and their chart (tests/test_views_glance.py)
    assert f" ui --backend-store-uri sqlite:///{store['cwd']}/mlflow.db; MLflow runs: " in last
    assert "tensorboard" not in last
