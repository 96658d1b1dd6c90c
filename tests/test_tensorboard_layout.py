"""TensorBoard opens on the comparison: a CUSTOM SCALARS layout with the model and PCA of each
metric on one chart, and sweep job (run) names without the overrides every job shares."""

from __future__ import annotations

import re

import pytest
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2, metadata

from ae_lab.callbacks import ComparisonLayout
from ae_lab.callbacks.comparison import CATEGORY, comparison_layout
from ae_lab.config import resolvers
from ae_lab.data import MNISTDataModule
from ae_lab.evaluation import PCABaseline
from ae_lab.models import DenseAE
from ae_lab.reporting.counterparts import pca_counterparts
from ae_lab.sweeps.names import EXCLUDE_KEYS, ShortJobNames, shared_keys
from tests.conftest import quiet_trainer, scalars

LOGGED = [
    "val/loss", "val/mse", "pca/val_mse", "train/loss", "epoch", "lr-Adam", "test/loss",
    "test/mse", "pca/test_mse", "pca/n_components", "test/mse_digit/3", "pca/test_mse_digit/3",
    "downstream/acc_original", "downstream/acc_recon", "downstream/acc_pca",
]  # fmt: skip


def drawn(chart: list, tags: list[str]) -> set[str]:
    """The tags a chart of ``SummaryWriter.add_custom_scalars``' layout draws among ``tags``."""
    return {t for t in tags if any(re.match(r, t) for r in chart[1])}


def test_pca_counterparts_pair_each_model_metric_with_pca_of_the_same_quantity():
    assert pca_counterparts(LOGGED) == {
        "val/mse": "pca/val_mse",
        "test/mse": "pca/test_mse",
        "test/mse_digit/3": "pca/test_mse_digit/3",
        "downstream/acc_recon": "downstream/acc_pca",
    }


def test_the_layout_puts_model_and_pca_of_a_metric_on_one_chart():
    [(category, charts)] = comparison_layout(LOGGED, "mse").items()
    assert category == CATEGORY
    # PCA's values are drawn from the run's PCA run, under the model's names
    losses = ["loss_mse/train", "loss_mse/val", "loss_neg_elbo/val"]
    shown = [drawn(chart, [*LOGGED, *losses]) for chart in charts.values()]
    assert shown == [
        {"val/mse", "test/mse"},
        {"downstream/acc_recon"},
        {"loss_mse/train", "loss_mse/val"},  # a chart per objective
    ]
    # the same charts from the first validation on: a sweep half tested shows no duplicates
    assert comparison_layout(["val/mse", "pca/val_mse", "val/loss"])[CATEGORY]["mse: model and PCA"]
    assert comparison_layout(["val/mse", "val/loss", "train/loss"]) == {}  # no PCA: no layout


@pytest.fixture(scope="module")
def logged(synthetic_root, tmp_path_factory):
    """A model fitted for two epochs and tested, beside PCA, logging to TensorBoard and CSV."""
    out = tmp_path_factory.mktemp("layout")
    dm = MNISTDataModule(root=str(synthetic_root), download=False, val_size=100, batch_size=50)
    loggers = [TensorBoardLogger(out, name="", version=""), CSVLogger(out, name="csv", version="")]
    callbacks = [PCABaseline(), ComparisonLayout()]
    trainer = quiet_trainer(
        max_epochs=2,
        limit_train_batches=2,
        logger=loggers,
        callbacks=callbacks,
        log_every_n_steps=1,
    )
    model = DenseAE(latent_dim=4, hidden=[16])
    trainer.fit(model, datamodule=dm)
    trainer.test(model, datamodule=dm)
    return out


def written_layouts(run_dir) -> list[layout_pb2.Layout]:
    """Every layout in the run's event files, in the order written."""
    out = []
    for events in sorted(run_dir.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"tensors": 0})
        acc.Reload()
        if metadata.CONFIG_SUMMARY_TAG in acc.Tags()["tensors"]:
            for event in acc.Tensors(metadata.CONFIG_SUMMARY_TAG):
                out.append(layout_pb2.Layout.FromString(event.tensor_proto.string_val[0]))
    return out


def test_a_run_writes_the_layout_to_tensorboard_only(logged):
    layouts = written_layouts(logged)
    # after the first validation (in training's event file) and not again: nothing changed
    assert len(layouts) == 1
    [category] = layouts[-1].category
    tags = list(scalars(logged))
    charts = {c.title: drawn(["Multiline", c.multiline.tag], tags) for c in category.chart}
    assert charts["mse: model and PCA"] == {"val/mse", "test/mse"}
    assert charts["loss (mse): the model's objective"] == {
        "loss_mse/train", "loss_mse/val", "loss_mse/test"
    }  # fmt: skip
    pca = scalars(logged / "pca")  # PCA's run: its values under the model's names
    assert pca["val/mse"] == scalars(logged)["pca/val_mse"]
    assert pca["test/mse"] == scalars(logged)["pca/test_mse"]
    assert "custom_scalars" not in (logged / "csv" / "metrics.csv").read_text()


# ---------------------------------------------------------------- run names


def test_a_name_leaves_out_what_every_job_shares():
    job = ["model=ae", "latent=4", "threads=1", "trainer.limit_train_batches=2"]
    shared = ["model", "threads", "trainer.limit_train_batches"]
    assert resolvers.run_name(job, shared) == "latent=4"
    # a swept key that names leave out is what tells the jobs apart, so it is shown
    swept = resolvers.run_name(job, ["model", "latent", "threads"])
    assert swept == "trainer.limit_train_batches=2"
    # a job's name does not depend on what its sweep shares, only on what it does not
    assert resolvers.run_name([*job, "trainer.max_epochs=3"], [*shared, "trainer.max_epochs"]) == (
        "latent=4"
    )


def sweep_config(task: list[str], params: dict | None = None):
    return OmegaConf.create(
        {
            "hydra": {
                "overrides": {"task": task, "hydra": ["hydra.mode=MULTIRUN"]},
                "sweeper": {"params": params or {}},
                "job": {"config": {"override_dirname": {"exclude_keys": []}}},
            }
        }
    )


@pytest.mark.parametrize(
    "task, params, shared",
    [
        (["model=ae", "latent=2,8", "threads=1", "+trainer.x=1"], None, ["model", "threads",
                                                                         "trainer.x"]),
        # nothing swept: one job, named in full
        (["model=ae", "latent=2"], None, []),
        # hydra.sweeper.params sweep too; the command line overrides them
        (["experiment=latent_sweep"], {"latent": "2,4", "model": "ae"}, ["model", "experiment"]),
        (["latent=8"], {"latent": "2,4", "model": "ae,vae"}, ["latent"]),
        # Optuna's search space
        (["model=vae"], {"optimizer.lr": "tag(log, interval(1e-4, 1e-2))"}, ["model"]),
    ],
)  # fmt: skip
def test_shared_keys_are_those_every_job_gets_one_value_of(task, params, shared):
    assert sorted(shared_keys(sweep_config(task, params))) == sorted(shared)


def test_every_job_of_the_sweep_is_composed_without_the_shared_keys_in_its_name():
    config = sweep_config(["model=ae", "latent=2,8", "threads=1"])
    OmegaConf.set_readonly(config.hydra, True)
    ShortJobNames().on_multirun_start(config)
    added = config.hydra.overrides.hydra[-1]
    assert added == f"{EXCLUDE_KEYS}=['model','threads']"
    assert list(OmegaConf.select(config, EXCLUDE_KEYS)) == ["model", "threads"]
