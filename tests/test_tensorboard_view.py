"""A finished sweep as its user sees it in TensorBoard: ``tensorboard --logdir <sweep>`` started
on the loopback address and read through the HTTP API its web page reads. Runs named by what
tells the jobs apart, the model and PCA of each metric on one CUSTOM SCALARS chart, one HPARAMS
session per job with its final metrics, every figure in IMAGES."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ae_lab.callbacks.comparison import CATEGORY, PCA_RUN
from ae_lab.callbacks.loggers import FIGURES
from ae_lab.core.identity import override_key
from ae_lab.reporting import metrics
from ae_lab.reporting.collect import load_yaml
from tests.conftest import TINY, sweep_in_process

pytestmark = pytest.mark.integration

SHARED = (*TINY, "threads=1")  # every job has these: no run name shows them
JOBS = ("latent=2", "latent=4")
# the model's and PCA's MSE, at validation and at the test
MSE = {"val/mse", "pca/val_mse", "test/mse", "pca/test_mse"}
STARTUP_S = 120

Api = Callable[..., Any]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, mnist_root) -> Path:
    work = tmp_path_factory.mktemp("tensorboard")
    sweep = work / "sweep"
    latents = ",".join(j.split("=")[1] for j in JOBS)
    sweep_in_process(f"latent={latents}", *SHARED, sweep_dir=sweep, data_root=mnist_root)
    return sweep


@pytest.fixture(scope="module")
def api(sweep, request) -> Api:
    """``api(path)`` GETs ``/data/<path>``, ``api(path, body)`` POSTs JSON, from a TensorBoard
    serving the sweep; it is stopped when the module's tests end, however they end."""
    port = free_port()
    log = (sweep.parent / "tensorboard.log").open("w")
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(sweep)]
    server = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=log
    )

    def stop() -> None:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()

    request.addfinalizer(stop)

    def call(path: str, body: dict | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/data/{path}", data=data)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as response:
            return json.loads(response.read())

    # TensorBoard answers before it has read every event file: wait for the last thing written
    deadline = time.monotonic() + STARTUP_S
    while True:
        assert server.poll() is None, (sweep.parent / "tensorboard.log").read_text()[-2000:]
        try:
            tags = call("plugin/scalars/tags")
            if all(metrics.RATIO in tags.get(job, {}) for job in JOBS):
                return call
        except OSError:
            pass
        assert time.monotonic() < deadline, f"TensorBoard did not load {sweep} in {STARTUP_S} s"
        time.sleep(0.5)


def test_runs_are_named_by_what_tells_the_jobs_apart(api, sweep):
    runs = api("runs")
    # each job and, as a run of its own, its PCA baseline
    assert sorted(runs) == sorted([*JOBS, *(f"{job}/{PCA_RUN}" for job in JOBS)])
    assert sorted(JOBS) == sorted(p.name for p in sweep.iterdir() if (p / "job.json").exists())
    # what every job shares is in the sweep's config and each job's overrides, not in the names
    assert set(SHARED) <= set(load_yaml(sweep / "multirun.yaml")["hydra"]["overrides"]["task"])
    shared = {override_key(o) for o in SHARED}
    for job in JOBS:
        assert shared <= {
            override_key(o) for o in load_yaml(sweep / job / ".hydra" / "overrides.yaml")
        }


def test_every_run_has_the_model_and_pca_scalars(api):
    tags = api("plugin/scalars/tags")
    for job in JOBS:
        assert MSE | {"train/loss", "val/loss", metrics.RATIO} <= set(tags[job])


def chart_tags(api: Api, run: str, chart: dict) -> set[str]:
    """The tags one CUSTOM SCALARS chart draws for ``run``, fetched as the page fetches them."""
    drawn = set()
    for regex in chart["multiline"]["tag"]:
        query = urllib.parse.urlencode({"run": run, "tag": regex})
        answer = api(f"plugin/custom_scalars/scalars?{query}")
        assert answer["regex_valid"]
        drawn |= {tag for tag, events in answer["tag_to_events"].items() if events}
    return drawn


def test_custom_scalars_draw_the_model_and_pca_on_one_chart(api):
    layout = api("plugin/custom_scalars/layout")
    first = layout["category"][0]
    assert first["title"] == CATEGORY
    charts = {c["title"]: c for c in first["chart"]}
    assert len(charts) == len(first["chart"])  # each run's charts merged into one set
    for job in JOBS:
        drawn = {title: chart_tags(api, job, chart) for title, chart in charts.items()}
        pca = {title: chart_tags(api, f"{job}/{PCA_RUN}", chart) for title, chart in charts.items()}
        # model and PCA (its own run, another colour), validation and test, on one chart
        assert drawn["mse: model and PCA"] == pca["mse: model and PCA"] == {"val/mse", "test/mse"}
        assert {"loss_mse/train", "loss_mse/val", "loss_mse/test"} in drawn.values()


def test_hparams_has_one_session_per_job_with_its_final_metrics(api):
    experiment = api("plugin/hparams/experiment", {"experimentName": ""})
    assert {"latent", "model"} <= {h["name"] for h in experiment["hparamInfos"]}
    shown = {m["name"]["tag"] for m in experiment["metricInfos"]}
    assert {"test/mse", "pca/test_mse", metrics.RATIO} <= shown
    groups = api(
        "plugin/hparams/session_groups",
        {"experimentName": "", "startIndex": 0, "sliceSize": 100, "allowedStatuses": [
            "STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]},
    )  # fmt: skip
    sessions = [s for g in groups["sessionGroups"] for s in g["sessions"]]
    assert sorted(s["name"] for s in sessions) == sorted(JOBS)
    for group in groups["sessionGroups"]:
        assert group["hparams"]["latent"] == int(group["name"].split("=")[1])  # a number
        values = {m["name"]["tag"]: m["value"] for m in group["metricValues"]}
        assert values[metrics.RATIO] == pytest.approx(values["test/mse"] / values["pca/test_mse"])


def test_every_figure_of_a_run_is_in_images(api, sweep):
    images = api("plugin/images/tags")
    for job in JOBS:
        figures = {p.stem for p in (sweep / job / FIGURES).glob("*.png")}
        assert figures and {t.rsplit("/", 1)[-1] for t in images[job]} == figures
