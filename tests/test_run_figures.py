"""A run's own figures and measurements read alone: one point per epoch, labelled image grids,
MSE against the clean image whatever the target, and a likelihood only where there is one."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from omegaconf import OmegaConf
from PIL import Image

from ae_lab.callbacks import HParamsSummary
from ae_lab.data import MNISTDataModule
from ae_lab.data.contract import clean_image
from ae_lab.evaluation import (
    Generation,
    ImportanceSampledNLL,
    PCABaseline,
    ReconstructionGrid,
)
from ae_lab.evaluation import generation as generation_mod
from ae_lab.evaluation import images as images_mod
from ae_lab.evaluation.figures import run_title
from ae_lab.evaluation.likelihood import importance_sampled_nll
from ae_lab.models import DenseAE, DenseVAE
from tests.conftest import quiet_trainer, run_stage


def datamodule(root: Path, **kwargs) -> MNISTDataModule:
    return MNISTDataModule(
        root=str(root), batch_size=64, eval_batch_size=64, val_size=100, **kwargs
    )


def row_labels(fig) -> list[str]:
    return [ax.get_ylabel() for ax in fig.axes]


# --- one point per epoch, HPARAMS with the final metrics ---


def test_a_two_epoch_run_logs_one_val_mse_point_per_epoch_and_hparams_names_the_metrics(
    tmp_path, synthetic_root
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    L.seed_everything(0)
    tb = TensorBoardLogger(tmp_path, name="", version="", default_hp_metric=False)
    table = CSVLogger(tmp_path, name="csv", version="")
    params = {"model": "ae", "latent": 2, "batch_size": 64, "lr": 0.001}
    tr = quiet_trainer(
        max_epochs=2,
        limit_train_batches=2,
        limit_val_batches=2,
        limit_test_batches=1,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
        logger=[tb, table],
        callbacks=[HParamsSummary(params), PCABaseline()],
    )
    model = DenseAE(latent_dim=2, hidden=[16])
    data = datamodule(synthetic_root)
    tr.fit(model, datamodule=data)
    tr.test(model, datamodule=data, verbose=False)
    for logger in (tb, table):
        logger.save()

    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    events.Reload()
    assert len(events.Scalars("val/mse")) == 2  # no extra final point for HPARAMS
    assert len(events.Scalars("pca/val_mse")) == 2
    assert len(events.Scalars("test/mse")) == 1
    assert len(events.Scalars("test/mse_ratio")) == 1  # computed at the end: logged once
    with open(Path(table.log_dir) / "metrics.csv") as f:
        assert sum(1 for row in csv.DictReader(f) if row.get("val/mse")) == 2

    content = events.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    named = {m.name.tag for m in experiment.experiment.metric_infos}
    assert {"val/mse", "test/mse", "pca/test_mse", "test/mse_ratio"} <= named
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    shown = start.session_start_info.hparams
    # numbers as numbers, which the tab sorts and filters by value
    assert shown["latent"].number_value == 2
    assert shown["batch_size"].number_value == 64
    assert shown["n_params"].number_value == model.n_params
    assert shown["lr"].number_value == pytest.approx(0.001)


# --- image grids that explain themselves ---


def test_reconstruction_grid_labels_its_rows_and_names_the_run(
    tmp_path, synthetic_root, monkeypatch
) -> None:
    drawn = {}
    real = images_mod.log_figure

    def keep(trainer, tag, picture, output_dir=None):
        drawn[tag] = picture
        return real(trainer, tag, picture, output_dir)

    monkeypatch.setattr(images_mod, "log_figure", keep)
    L.seed_everything(0)

    def fit(callbacks: list, **data_kwargs) -> None:
        tr = quiet_trainer(
            max_epochs=1,
            limit_train_batches=1,
            limit_val_batches=1,
            num_sanity_val_steps=0,
            default_root_dir=tmp_path,
            callbacks=callbacks,
        )
        tr.fit(
            DenseAE(latent_dim=4, hidden=[16]), datamodule=datamodule(synthetic_root, **data_kwargs)
        )

    fit([PCABaseline(), ReconstructionGrid(n_images=6)])
    fig = drawn["val/reconstructions"]
    assert row_labels(fig) == ["original", "model input", "reconstruction", "PCA, 4 components"]
    assert fig.texts[0].get_text().startswith("DenseAE, latent 4, 1 epoch: validation images")
    width, height = Image.open(tmp_path / "figures" / "reconstructions.png").size
    assert width >= 6 * 50 and height >= 4 * 50  # each digit drawn at about 60 pixels

    drawn.clear()  # a binarized target gets a row of its own
    fit([ReconstructionGrid(n_images=3)], binarize_target="sample")
    assert row_labels(drawn["val/reconstructions"]) == [
        "original",
        "target (binarized)",
        "model input",
        "reconstruction",
    ]


def test_the_title_names_the_config_not_the_class(monkeypatch) -> None:
    from hydra.core.hydra_config import HydraConfig

    choices = {"model": "deep_ae", "transform": "mask", "report_job": None}
    cfg = OmegaConf.create({"hydra": {"runtime": {"choices": choices}}})
    monkeypatch.setattr(HydraConfig.instance(), "cfg", cfg)
    model = DenseAE(latent_dim=8, hidden=[16])
    title = run_title(SimpleNamespace(max_epochs=20), model)
    assert title == "deep_ae, latent 8, transform mask, 20 epochs"
    monkeypatch.setattr(HydraConfig.instance(), "cfg", None)
    assert run_title(None, model) == "DenseAE, latent 8"


def test_interpolations_and_samples_label_their_axes(tmp_path, monkeypatch) -> None:
    drawn = {}
    monkeypatch.setattr(
        generation_mod, "log_figure", lambda tr, tag, fig, out=None: drawn.setdefault(tag, fig)
    )
    trainer = SimpleNamespace(is_global_zero=True, max_epochs=3, datamodule=None)
    model = DenseVAE(latent_dim=2, hidden=[16]).eval()
    cb = Generation(n_samples=9, n_pairs=2, steps=5)
    x = torch.rand(4, 1, 28, 28)
    batch = {"input": x, "target": x, "label": torch.tensor([3, 7, 7, 1])}
    run_stage([cb], trainer, model, "test", (None, batch))
    inter = drawn["test/interpolations"]
    assert row_labels(inter) == ["from 3 to 7", "from 7 to 1"]
    bottom = inter.axes[-1]
    assert [t.get_text() for t in bottom.get_xticklabels()] == ["0", "0.25", "0.5", "0.75", "1"]
    assert "t" in bottom.get_xlabel() and "code(first)" in bottom.get_xlabel()
    title = "DenseVAE, latent 2, 3 epochs: interpolations between test images"
    assert inter.texts[0].get_text() == title
    samples = drawn["test/prior_samples"]
    assert "N(0, I)" in samples.axes[0].get_xlabel()
    assert "samples of the prior" in samples.texts[0].get_text()


# --- MSE against the clean image, whatever the target ---


class KeepBatches(L.Callback):
    def __init__(self) -> None:
        self.seen: list[tuple[torch.Tensor, ...]] = []

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dl_idx=0):
        pca = trainer.callbacks[0].shared.pca.reconstruct(batch["input"])
        self.seen.append((outputs["recon"], clean_image(batch), batch["target"], pca))


def test_mse_is_against_the_clean_image_when_the_target_is_binarized(
    tmp_path, synthetic_root
) -> None:
    L.seed_everything(0)
    keep = KeepBatches()
    tr = quiet_trainer(default_root_dir=tmp_path, callbacks=[PCABaseline(), keep])
    data = datamodule(synthetic_root, binarize_target="sample")
    metrics = tr.test(DenseAE(latent_dim=4, hidden=[16]), datamodule=data, verbose=False)[0]
    recon, clean, target, pca = (torch.cat(t) for t in zip(*keep.seen, strict=True))
    assert not torch.equal(clean, target)  # the targets really are binarized

    def mse(a, b) -> float:
        return float((a - b).pow(2).mean())

    assert metrics["test/mse"] == pytest.approx(mse(recon, clean), rel=1e-5)
    assert metrics["test/mse_target"] == pytest.approx(mse(recon, target), rel=1e-5)
    assert metrics["pca/test_mse"] == pytest.approx(mse(pca, clean), rel=1e-5)
    assert metrics["pca/test_mse_target"] == pytest.approx(mse(pca, target), rel=1e-5)
    # a clean target is the clean image: no second name
    plain = tr.test(DenseAE(latent_dim=4, hidden=[16]), datamodule=datamodule(synthetic_root))
    assert "test/mse_target" not in plain[0] and "pca/test_mse_target" not in plain[0]


# --- a likelihood only where there is one, with the K it used ---


def test_nll_on_grey_targets_is_skipped_with_one_line(tmp_path, synthetic_root, caplog) -> None:
    model = DenseVAE(latent_dim=2, hidden=[16])
    tr = quiet_trainer(
        default_root_dir=tmp_path, limit_test_batches=2, callbacks=[ImportanceSampledNLL(5)]
    )
    with caplog.at_level(logging.WARNING):
        metrics = tr.test(model, datamodule=datamodule(synthetic_root), verbose=False)[0]
    assert "test/nll" not in metrics and "test/nll_k" not in metrics
    lines = [r.getMessage() for r in caplog.records if "test/nll skipped" in r.getMessage()]
    assert len(lines) == 1 and "data.binarize_target" in lines[0]


def test_nll_uses_k_samples_in_bounded_chunks_and_says_which_k(tmp_path, synthetic_root) -> None:
    torch.manual_seed(0)
    model = DenseVAE(latent_dim=2, hidden=[16]).eval()
    decoded: list[int] = []
    model.decoder.register_forward_hook(lambda m, args, out: decoded.append(len(args[0])))
    x = torch.bernoulli(torch.full((4, 1, 28, 28), 0.3))
    importance_sampled_nll(model, x, x, n_samples=10, max_decoded=12)
    assert decoded == [12, 12, 12, 4]  # 3 draws of 4 images at a time, 10 draws in all

    decoded.clear()
    tr = quiet_trainer(
        default_root_dir=tmp_path, limit_test_batches=1, callbacks=[ImportanceSampledNLL(7)]
    )
    data = datamodule(synthetic_root, binarize_target="sample")
    metrics = tr.test(model, datamodule=data, verbose=False)[0]
    assert metrics["test/nll_k"] == 7
    # the test step decodes the batch twice (posterior mean, one draw for neg_elbo), then 7 draws
    assert sum(decoded) == (2 + 7) * 64
    # the negative ELBO bounds the NLL from above; the objective at the posterior mean need not
    assert metrics["test/nll"] <= metrics["test/neg_elbo"] + 1.0


def test_pca_reconstructions_reach_the_downstream_classifier_clamped(monkeypatch) -> None:
    from ae_lab.evaluation import DownstreamClassification
    from ae_lab.evaluation.record import build_record

    seen: dict[str, torch.Tensor] = {}

    class Recorder(torch.nn.Module):
        hparams = {"n_classes": 10}

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen[len(seen)] = x
            return torch.zeros(len(x), 10)

    cb = DownstreamClassification()
    cb.classifier = Recorder()
    pca = torch.linspace(-0.5, 1.5, 4 * 784).view(4, 1, 28, 28)  # PCA's pixels leave [0, 1]
    x = torch.rand(4, 1, 28, 28)
    batch = {"input": x, "target": (x > 0.5).float(), "clean": x, "label": torch.arange(4)}
    cb.update(None, build_record("test", 0, batch, {"recon": x}, pca=lambda inputs: pca))
    original, _, pca_seen = seen.values()
    assert torch.equal(original, x)  # the clean image, not the binarized target
    assert torch.equal(pca_seen, pca.clamp(0, 1))
