"""MLflow read at a glance, through the REST API of a real ``mlflow server`` on loopback (what
``mlflow ui`` serves), no browser: the addresses ae_lab prints open the experiment's runs in the
model-training view and its model-vs-PCA chart, because the experiment carries that chart and
the UI served reads both from the address; runs are named as their jobs; the chart's metrics are
there, on the epochs."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

from ae_lab.reporting import mlflow_view
from ae_lab.reporting.run_end import mlflow_links
from tests.conftest import TINY, sweep_in_process

EPOCHS = 3
JOBS = {"model=ae", "model=vae"}
VIEW_TAG = mlflow_view.SHARED_VIEW_TAG + mlflow_view.VIEW_KEY


# --------------------------------------------------------------------------------- unit tests
def query(url: str) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(url.split("?", 1)[1])


def test_every_mlflow_address_names_the_model_training_view_and_the_shared_view():
    runs, chart = mlflow_links("sqlite:////work/mlflow.db", "7")
    assert runs.startswith("MLflow runs: http://127.0.0.1:5000/#/experiments/7/runs?")
    assert chart.startswith("MLflow model vs PCA: http://127.0.0.1:5000/#/experiments/7/runs?")
    shared = {"workflowType": ["machine_learning"], "viewStateShareKey": [mlflow_view.VIEW_KEY]}
    assert query(runs) == shared
    assert query(chart) == {**shared, "compareRunsMode": ["CHART"]}
    # a tracking server: its own address; a store no UI address reaches, or no experiment: none
    [served, _] = mlflow_links("http://tracking:5000/", "3")
    assert served.startswith("MLflow runs: http://tracking:5000/#/experiments/3/runs?")
    assert mlflow_links("file:///work/mlruns", "3") == []
    assert mlflow_links("sqlite:////work/mlflow.db", None) == []


def test_the_experiment_tags_keep_a_users_choice_and_bring_the_chart_up_to_date():
    fresh = mlflow_view.experiment_tags({})
    assert fresh[mlflow_view.EXPERIMENT_KIND_TAG] == mlflow_view.MODEL_TRAINING
    assert set(fresh) == {mlflow_view.EXPERIMENT_KIND_TAG, VIEW_TAG}
    chosen = {mlflow_view.EXPERIMENT_KIND_TAG: "genai_development", VIEW_TAG: "{}"}
    assert mlflow_view.experiment_tags(chosen) == {VIEW_TAG: fresh[VIEW_TAG]}
    assert mlflow_view.experiment_tags({**fresh}) == {}  # nothing to write twice


# -------------------------------------------------------------------------- against a server
@pytest.fixture(scope="module")
def sweep(tmp_path_factory, mnist_root) -> dict:
    """The README's sweep, tiny: two jobs logged to MLflow alone, in this process."""
    cwd = tmp_path_factory.mktemp("views_glance")
    store = cwd / "mlflow.db"
    done = sweep_in_process(
        "model=ae,vae",
        *TINY,
        f"trainer.max_epochs={EPOCHS}",
        "threads=1",
        "logger=mlflow",
        f"logger.mlflow.tracking_uri=sqlite:///{store}",
        sweep_dir=cwd / "multirun" / "day" / "time",
        data_root=mnist_root,
    )
    return {"cwd": cwd, "store": store, "out": done.out}


@pytest.fixture(scope="module")
def server(sweep):
    """``mlflow server`` on the sweep's store, on a free loopback port, without its job
    workers: ``api(path, body=None)`` answers its REST API's JSON (a body: POST), ``raw(path)``
    any page's bytes. Stopped with every process it started."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = sweep["cwd"] / "mlflow_server.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri"]
            + [f"sqlite:///{sweep['store']}", "--host", "127.0.0.1", "--port", str(port)]
            + ["--workers", "1"],
            cwd=sweep["cwd"],
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,  # its own process group: uvicorn's worker goes with it
        )
    base = f"http://127.0.0.1:{port}"

    def raw(path: str, body: bytes | None = None) -> bytes:
        request = urllib.request.Request(f"{base}/{path.lstrip('/')}", data=body)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.read()

    def api(path: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        return json.loads(raw(f"api/2.0/mlflow/{path}", data))

    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                raw("health")
                break
            except OSError:
                assert time.monotonic() < deadline, "mlflow server did not answer within 180 s"
                time.sleep(0.25)
        yield {"raw": raw, "api": api}
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def experiment(server) -> dict:
    found = server["api"]("experiments/get-by-name?experiment_name=ae_lab")["experiment"]
    return {**found, "tags": {t["key"]: t["value"] for t in found.get("tags", [])}}


def printed(sweep, label: str) -> str:
    """The address the sweep's last line gives after ``<label>: ``."""
    [line] = [line for line in sweep["out"].splitlines() if "sweep finished:" in line]
    [url] = re.findall(rf"{label}: (\S+?)(?:;|$)", line)
    return url


@pytest.mark.integration
def test_the_printed_addresses_open_the_experiments_runs_and_its_chart(sweep, server):
    ident = experiment(server)["experiment_id"]
    runs, chart = printed(sweep, "MLflow runs"), printed(sweep, "MLflow model vs PCA")
    assert runs.startswith(f"{mlflow_view.MLFLOW_UI}/#/experiments/{ident}/runs?")
    assert query(runs)["workflowType"] == ["machine_learning"]  # not MLflow's GenAI view
    [key] = query(runs)["viewStateShareKey"]
    assert mlflow_view.SHARED_VIEW_TAG + key in experiment(server)["tags"]  # a view it has
    assert chart.startswith(f"{runs}&") and query(chart)["compareRunsMode"] == ["CHART"]


@pytest.mark.integration
def test_the_ui_served_reads_the_view_and_the_shared_chart_from_the_address(server):
    """What the addresses rely on, in the web app this MLflow serves: its view comes from the
    address's ``workflowType`` (``machine_learning``) over the browser's ``mlflow.workflowType``,
    its chart layout from the experiment tag the address's ``viewStateShareKey`` names."""
    page = server["raw"]("/").decode()
    scripts = re.findall(r'<script[^>]* src="([^"]+\.js)"', page)
    assert scripts, page[:2000]
    app = "".join(server["raw"](script).decode() for script in scripts)
    assert '"mlflow.workflowType"' in app and 'get("workflowType")' in app
    assert 'MACHINE_LEARNING="machine_learning"' in app
    assert '"viewStateShareKey"' in app and f'"{mlflow_view.SHARED_VIEW_TAG}"' in app


@pytest.mark.integration
def test_the_experiment_carries_its_kind_and_the_model_vs_pca_chart(server):
    tags = experiment(server)["tags"]
    assert tags[mlflow_view.EXPERIMENT_KIND_TAG] == mlflow_view.MODEL_TRAINING
    view = json.loads(tags[VIEW_TAG])
    [first, *_] = view["compareRunSections"]
    charts = [c for c in view["compareRunCharts"] if c["metricSectionId"] == first["uuid"]]
    assert first["name"] == "model vs PCA" and charts
    assert charts[0]["type"] == "LINE" and charts[0]["xAxisKey"] == "step"
    assert charts[0]["selectedMetricKeys"] == ["val/mse", "pca/val_mse"]
    # the runs table's columns: the settings that tell jobs apart and the headline metrics
    assert {"params.`latent`", "metrics.`test/mse_ratio`"} <= set(view["selectedColumns"])


def history(server, run: dict, metric: str) -> list[tuple[int, float]]:
    args = urllib.parse.urlencode({"run_id": run["info"]["run_id"], "metric_key": metric})
    points = server["api"](f"metrics/get-history?{args}")["metrics"]
    return sorted((p["step"], p["value"]) for p in points)


@pytest.mark.integration
def test_runs_are_named_as_their_jobs_with_what_the_view_shows(sweep, server):
    ident = experiment(server)["experiment_id"]
    found = server["api"]("runs/search", {"experiment_ids": [ident]})["runs"]
    runs = {run["info"]["run_name"]: run for run in found}
    assert set(runs) == JOBS  # named as TensorBoard names them: the job's folder
    for name, run in runs.items():
        model, pca = history(server, run, "val/mse"), history(server, run, "pca/val_mse")
        epochs = list(range(1, EPOCHS + 1))
        assert [s for s, _ in model] == [s for s, _ in pca] == epochs, name
        assert len({v for _, v in pca}) == 1, name  # PCA is fitted once: a flat line
        shown = {f"{kind}.`{item['key']}`" for kind in ("params", "metrics")
                 for item in run["data"].get(kind, [])}  # fmt: skip
        assert set(json.loads(experiment(server)["tags"][VIEW_TAG])["selectedColumns"]) <= shown
