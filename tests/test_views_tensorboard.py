"""TensorBoard at a glance: PCA as a run of its own beside each model, each objective's losses on
charts of their own, epochs on the x-axis of per-epoch metrics, the learning rate at every logged
step, HPARAMS numbers as numbers, and a run-end block whose commands run from a fresh shell.
The unit tests read the event files; the integration test reads a sweep through TensorBoard's
HTTP API, as its web page does."""

from __future__ import annotations

import functools
import json
import re
import shlex
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger

from ae_lab.callbacks import ComparisonLayout
from ae_lab.callbacks.comparison import PCA_RUN, comparison_layout, loss_tag, objective_name
from ae_lab.callbacks.epoch_axis import STEP, EpochAxis
from ae_lab.callbacks.loggers import FailingWandbLogger, log_hyperparams
from ae_lab.data import MNISTDataModule
from ae_lab.evaluation import PCABaseline
from ae_lab.models import DenseAE, DenseDecoder, DenseEncoder, Reconstruction
from ae_lab.models.base import AutoencoderModule
from ae_lab.models.vae import ConvVAE, DenseVAE
from ae_lab.reporting import run_end as console
from tests.conftest import TINY, quiet_trainer, scalars, sweep_in_process
from tests.test_scale import hparams
from tests.test_tensorboard_layout import written_layouts
from tests.test_tensorboard_view import chart_tags, free_port

EPOCHS, BATCHES = 3, 3


def steps(run_dir: Path) -> dict[str, list[int]]:
    """Every scalar's steps in ``run_dir``'s own event files, by tag."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[int]] = {}
    for events in sorted(run_dir.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend(e.step for e in acc.Scalars(tag))
    return out


@pytest.fixture(scope="module")
def vae_run(synthetic_root, tmp_path_factory) -> Path:
    """A VAE fitted for three epochs of three batches on a one-cycle schedule, then tested,
    beside PCA, logging to TensorBoard at every step."""
    out = tmp_path_factory.mktemp("views")
    dm = MNISTDataModule(root=str(synthetic_root), download=False, val_size=100, batch_size=50)
    trainer = quiet_trainer(
        max_epochs=EPOCHS,
        limit_train_batches=BATCHES,
        logger=[TensorBoardLogger(out, name="", version="")],
        callbacks=[PCABaseline(), ComparisonLayout(), EpochAxis(), LearningRateMonitor("step")],
        log_every_n_steps=1,
    )
    model = DenseVAE(latent_dim=4)
    model.scheduler_factory = functools.partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=1e-3)
    trainer.fit(model, datamodule=dm)
    trainer.test(model, datamodule=dm)
    return out


def test_per_epoch_metrics_are_at_their_epoch_and_the_test_at_the_last(vae_run):
    at = steps(vae_run)
    epochs = list(range(1, EPOCHS + 1))
    for tag in ("train/loss", "val/loss", "val/mse", "pca/val_mse", "train/kl"):
        assert at[tag] == epochs, tag
    assert at["test/mse"] == at["pca/test_mse"] == [EPOCHS]
    assert "epoch" not in at  # the x-axis is the epoch: no scalar to translate steps


def test_the_learning_rate_has_a_point_per_logged_step(vae_run):
    assert steps(vae_run)["train/lr"] == list(range(EPOCHS * BATCHES))
    rates = scalars(vae_run)["train/lr"]
    peak = rates.index(max(rates))
    assert 0 < peak < len(rates) - 1  # the one-cycle schedule: up, then down


def test_pca_is_a_run_of_its_own_under_the_model_s_names(vae_run):
    pca, main = scalars(vae_run / PCA_RUN), scalars(vae_run)
    assert pca["val/mse"] == main["pca/val_mse"] and len(set(pca["val/mse"])) == 1  # flat
    assert pca["test/mse"] == main["pca/test_mse"]
    assert steps(vae_run / PCA_RUN)["val/mse"] == steps(vae_run)["val/mse"]
    assert "val/loss" not in pca  # PCA has no objective of the model's


def test_a_vae_s_losses_go_to_its_objective_s_chart(vae_run):
    main = scalars(vae_run)
    for stage in ("train", "val", "test"):
        assert main[loss_tag("neg_elbo", stage)] == main[f"{stage}/loss"]
    assert not any(tag.startswith(loss_tag("mse", "")) for tag in main)
    [category] = written_layouts(vae_run)[-1].category
    titles = [chart.title for chart in category.chart]
    assert "loss (neg_elbo): the model's objective" in titles
    assert not any("(mse)" in title for title in titles)


def test_each_objective_has_its_own_loss_chart():
    names = ["val/mse", "pca/val_mse", "val/loss"]
    ae, vae = comparison_layout(names, "mse"), comparison_layout(names, "neg_elbo")
    ae_loss = [c for t, c in next(iter(ae.values())).items() if t.startswith("loss")]
    vae_loss = [c for t, c in next(iter(vae.values())).items() if t.startswith("loss")]
    assert ae_loss != vae_loss
    # a loss chart's tags match one objective's copies only
    assert not any(re.match(r, loss_tag("neg_elbo", "val")) for r in ae_loss[0][1])
    assert any(re.match(r, loss_tag("mse", "val")) for r in ae_loss[0][1])


def test_an_objective_is_named_where_the_loss_is_defined():
    class MyLoss(Reconstruction):  # an objective with a loss of its own, not named
        def terms(self, model, batch, code, logits, recon):
            return {"loss": recon.abs().mean()}

    assert objective_name(DenseAE(2, hidden=[4])) == "mse"
    assert objective_name(DenseVAE(2, hidden=[4])) == objective_name(ConvVAE(2, channels=[4]))
    assert objective_name(DenseVAE(2, hidden=[4])) != "mse"
    mine = AutoencoderModule(DenseEncoder(2), DenseDecoder(2), MyLoss(), latent_dim=2)
    assert objective_name(mine) == "MyLoss"


def test_hparams_numbers_are_written_as_numbers(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    tb = TensorBoardLogger(tmp_path, name="", version="")
    trainer = SimpleNamespace(loggers=[tb], global_step=40, logged_metrics={STEP: 4.0})
    log_hyperparams(trainer, {"model": "ae", "latent": 16, "lr": 3e-3}, {"test/mse_ratio": 0.9})
    tb.experiment.flush()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    shown = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert shown["latent"].number_value == 16 and not shown["latent"].string_value
    assert shown["model"].string_value == "ae"
    # the final metrics at the step of the run's last metrics: the epochs it trained
    assert [e.step for e in events.Scalars("test/mse_ratio")] == [4]


def test_wandb_closes_a_failed_run_as_failed(tmp_path):
    finished = []
    logger = FailingWandbLogger(save_dir=str(tmp_path), offline=True)
    logger._experiment = SimpleNamespace(finish=lambda exit_code=None: finished.append(exit_code))
    logger.finalize("success")
    assert finished == []  # a finished job's run stays open for its test and summary
    logger.finalize("failed")  # what Lightning tells every logger when a fit or test raises
    assert finished == [1]


# ------------------------------------------------------------------------------ run-end block
def test_the_run_end_block_points_at_the_loggers_the_run_used(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "outputs" / "2026-01-01" / "12-00-00"
    mlflow = MLFlowLogger.__new__(MLFlowLogger)
    mlflow._tracking_uri, mlflow._experiment_id = f"sqlite:///{tmp_path}/mlflow.db", "3"
    values = {"test/mse": 0.02, "pca/test_mse": 0.04}

    only_mlflow = console.run_end_block(values, run, [mlflow])
    assert "tensorboard" not in only_mlflow and "custom_scalars" not in only_mlflow
    assert f"ui --backend-store-uri sqlite:///{tmp_path}/mlflow.db\n" in only_mlflow
    assert "/#/experiments/3/runs?workflowType=machine_learning" in only_mlflow

    only_tb = console.run_end_block(values, run, [TensorBoardLogger(run, name="", version="")])
    assert "mlflow" not in only_tb.lower()
    assert f" --logdir {run}\n" in only_tb  # absolute: it runs from any folder

    csv = console.run_end_block(values, run, [CSVLogger(run, name="csv", version="")])
    assert csv.endswith(f"metrics table: {run}/csv/metrics.csv")
    assert console.run_end_block(values, run).endswith(f"run folder: {run}")


def test_tools_are_named_by_the_path_of_this_environment(tmp_path, monkeypatch):
    """The venv's own script, or this Python running the tool's module: never a bare name that
    only an activated venv finds."""
    monkeypatch.chdir(tmp_path)
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "tensorboard").write_text("")
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    assert console.tool("tensorboard", "tensorboard.main") == f"{bin_dir}/tensorboard"
    assert console.tool("mlflow", "mlflow") == f"{bin_dir}/python -m mlflow"
    monkeypatch.setattr(sys, "executable", "/opt/my env/bin/python")
    assert console.tool("mlflow", "mlflow") == "'/opt/my env/bin/python' -m mlflow"


# -------------------------------------------------------------------------- through TensorBoard
JOBS = ("model=ae", "model=vae")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, mnist_root) -> Path:
    """A sweep of an autoencoder and a VAE, two epochs each, the learning rate at every step
    (read by ``api``, the TensorBoard fixture of test_tensorboard_view, on this sweep)."""
    work = tmp_path_factory.mktemp("views_tb")
    sweep = work / "sweep"
    sweep_in_process("model=ae,vae", *TINY, "trainer.max_epochs=2", "trainer.log_every_n_steps=1",
                     "threads=1", sweep_dir=sweep, data_root=mnist_root)  # fmt: skip
    return sweep


@pytest.fixture(scope="module")
def api(sweep, request):
    """``api(path)`` GETs ``/data/<path>`` from ``tensorboard --logdir <sweep>`` on a loopback
    port, once it has read both jobs' tests; stopped when the module's tests end."""
    pca_runs = [f"{job}/{PCA_RUN}" for job in JOBS]
    port = free_port()
    log = (sweep.parent / "tensorboard.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(sweep)]
        + ["--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=log,
    )

    def stop() -> None:
        server.terminate()
        server.wait(timeout=30)
        log.close()

    request.addfinalizer(stop)

    def call(path: str):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/{path}", timeout=30) as answer:
            return json.loads(answer.read())

    deadline = time.monotonic() + 120
    while True:
        assert server.poll() is None, (sweep.parent / "tensorboard.log").read_text()[-2000:]
        try:
            tags = call("plugin/scalars/tags")
            if all("test/mse" in tags.get(run, {}) for run in [*JOBS, *pca_runs]):
                return call
        except OSError:
            pass
        assert time.monotonic() < deadline, "TensorBoard did not load the sweep in 120 s"
        time.sleep(0.5)


def series(api, run: str, tag: str) -> list[tuple[int, float]]:
    query = urllib.parse.urlencode({"run": run, "tag": tag})
    return [(step, value) for _, step, value in api(f"plugin/scalars/scalars?{query}")]


@pytest.mark.integration
def test_tensorboard_shows_each_model_beside_its_pca_run(api):
    assert sorted(api("runs")) == sorted([*JOBS, *(f"{job}/{PCA_RUN}" for job in JOBS)])
    for job in JOBS:
        model, pca = series(api, job, "val/mse"), series(api, f"{job}/{PCA_RUN}", "val/mse")
        assert [s for s, _ in model] == [s for s, _ in pca] == [1, 2]  # epochs
        assert [v for _, v in pca] == [v for _, v in series(api, job, "pca/val_mse")]
        assert len(series(api, job, "train/lr")) == 2 * 2  # every step of 2 epochs of 2 batches
        assert "epoch" not in api("plugin/scalars/tags")[job]


@pytest.mark.integration
def test_tensorboard_draws_each_objective_on_a_loss_chart_of_its_own(api):
    [category] = api("plugin/custom_scalars/layout")["category"]
    charts = {c["title"]: c for c in category["chart"]}
    ae = chart_tags(api, "model=ae", charts["loss (mse): the model's objective"])
    vae = chart_tags(api, "model=vae", charts["loss (neg_elbo): the model's objective"])
    assert ae == {loss_tag("mse", s) for s in ("train", "val", "test")}
    assert vae == {loss_tag("neg_elbo", s) for s in ("train", "val", "test")}
    assert not chart_tags(api, "model=vae", charts["loss (mse): the model's objective"])
    assert not chart_tags(api, "model=ae", charts["loss (neg_elbo): the model's objective"])


@pytest.mark.integration
def test_the_hparams_tab_has_one_set_of_keys_for_both_models_and_their_final_metrics(sweep):
    """HPARAMS lines runs up by their keys: an autoencoder and a VAE of one sweep log the same
    keys, numbers as numbers (so that the tab sorts and filters them as numbers), and the final
    metrics."""
    (ae, ae_metrics), (vae, vae_metrics) = (hparams(sweep / job) for job in JOBS)
    assert ae.keys() == vae.keys()
    assert (ae["model"], vae["model"], vae["latent"]) == ("ae", "vae", 32)
    assert {"lr", "batch_size", "seed", "transform", "n_params"} <= ae.keys()
    assert "hp_metric" not in ae_metrics
    ratio = {"val/mse", "test/mse", "pca/test_mse", "test/mse_ratio"}
    assert ratio <= ae_metrics and ratio <= vae_metrics


@pytest.mark.integration
def test_the_printed_tensorboard_command_runs_from_a_fresh_shell(sweep):
    """The command each job's run-end block prints, run with a PATH that has no venv on it, in
    the folder the sweep was started from (its --logdir is relative to it)."""
    for job in JOBS:
        log = (sweep / job / "train.log").read_text()
        [command] = re.findall(r"curves and figures: (.+)", log)
        words = shlex.split(command)
        assert words[-2:] == ["--logdir", str(sweep / job)]
        fresh = {"PATH": "/usr/bin:/bin", "HOME": str(sweep.parent)}
        proc = subprocess.run([*words[:-2], "--version_tb"], cwd=sweep.parent, env=fresh,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert re.match(r"\d+\.\d+", proc.stdout.strip())
        assert "step" not in json.loads((sweep / job / "metrics.json").read_text())


def test_a_sweep_points_at_the_loggers_of_its_config(tmp_path, monkeypatch):
    from omegaconf import OmegaConf

    monkeypatch.chdir(tmp_path)
    loggers = OmegaConf.create(
        {
            "tensorboard": {"_target_": "lightning.pytorch.loggers.TensorBoardLogger"},
            "mlflow": {
                "_target_": "ae_lab.callbacks.loggers.mlflow_logger",
                # what only a job resolves: the sweep's folder stands for it once they are over
                "tracking_uri": "sqlite:///${hydra:runtime.cwd}/mlflow.db",
            },
        }
    )
    curves, charts, store = console.sweep_views(loggers, tmp_path / "sweep")
    assert curves.startswith("curves: ") and curves.endswith(f" --logdir {tmp_path}/sweep")
    assert charts == f"model vs PCA: {console.CUSTOM_SCALARS_URL}"
    assert store.endswith(f" ui --backend-store-uri sqlite:///{tmp_path}/mlflow.db")
    assert console.sweep_views(OmegaConf.create({}), tmp_path) == []  # logger=none
