"""Evaluation protocols: the linear probe scores only the classes a model was trained on, the
negative ELBO draws independent seeded noise per batch and only exists for binary targets, the
novelty score is against the clean image, and samples/fd comes with its floor."""

from __future__ import annotations

import logging
import math
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import scipy.linalg
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ae_lab.config.validation import problems
from ae_lab.data import ImageDataModule
from ae_lab.evaluation import (
    DownstreamClassification,
    ImportanceSampledNLL,
    LinearProbe,
    NoveltyAUROC,
    PCABaseline,
    SampleQuality,
)
from ae_lab.evaluation.novelty import MODEL_AUROC, reconstruction_error
from ae_lab.evaluation.probe import label_budget
from ae_lab.evaluation.samples import FLOOR
from ae_lab.models import DenseAE, DenseVAE
from ae_lab.models.vae import GREY_TARGETS
from ae_lab.reporting import metrics as headline
from ae_lab.run import build
from tests.conftest import TINY, compose_cfg, quiet_trainer

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Lightning's few-workers hints


def datamodule(root, **kw) -> ImageDataModule:
    return ImageDataModule(
        root=str(root), download=False, val_size=100, batch_size=64, eval_batch_size=50, **kw
    )


def probe_accuracy(train_x, train_y, test_x, test_y) -> float:
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return probe.fit(train_x, train_y).score(test_x, test_y)


# --- the linear probe ---


def test_the_probe_of_a_run_without_a_class_scores_the_classes_it_was_trained_on(
    synthetic_root,
):
    """Trained without class 3, the probe has no class 3 to predict: every class-3 test image
    would count as wrong. probe/acc is scikit-learn's accuracy on the nine seen classes (with
    all labels and with 100 and 55 per class), for the model's codes and PCA's, and
    probe/n_classes says nine."""
    L.seed_everything(0)
    data = datamodule(synthetic_root, exclude_classes=[3])
    model = DenseAE(latent_dim=4, hidden=[32])
    pca, probe = PCABaseline(), LinearProbe(n_train=None, seed=2)
    tr = quiet_trainer(
        max_epochs=1, limit_train_batches=3, num_sanity_val_steps=0, callbacks=[pca, probe]
    )
    tr.fit(model, datamodule=data)
    metrics = tr.test(model, datamodule=data, verbose=False)[0]
    assert metrics["probe/n_classes"] == 9
    model.eval()
    x, y = data.images("train"), data.labels("train").numpy()
    tx, ty = data.images("test"), data.labels("test").numpy()
    assert 3 not in y and (ty == 3).sum() > 0
    seen = ty != 3
    with torch.no_grad():
        codes = {"probe/": (model.encode(x).double().numpy(), model.encode(tx).double().numpy())}
    flat = (x.flatten(1).double().numpy(), tx.flatten(1).double().numpy())
    codes["pca/probe_"] = tuple(pca.pca.transform(f) for f in flat)
    for prefix, (train_x, test_x) in codes.items():
        for suffix, keep in (
            ("acc", np.arange(len(y))),
            ("acc_100", label_budget(y, 100, seed=2)),
            ("acc_55", label_budget(y, 55, seed=2)),
        ):
            on_seen = probe_accuracy(train_x[keep], y[keep], test_x[seen], ty[seen])
            on_all = probe_accuracy(train_x[keep], y[keep], test_x, ty)
            # every class-3 image is wrong when scored: the old figure is the seen one diluted
            assert on_all == pytest.approx(on_seen * seen.mean())
            assert metrics[f"{prefix}{suffix}"] == pytest.approx(on_seen, abs=1e-6), suffix
            assert metrics[f"{prefix}{suffix}"] > on_all


def test_a_run_with_every_class_probes_all_ten_at_both_label_budgets(synthetic_root):
    data = datamodule(synthetic_root)
    tr = quiet_trainer(limit_test_batches=2, callbacks=[LinearProbe(n_train=300)])
    metrics = tr.test(DenseAE(4, hidden=[8]), datamodule=data, verbose=False)[0]
    assert metrics["probe/n_classes"] == 10
    assert {"probe/acc", "probe/acc_100", "probe/acc_55"} <= metrics.keys()
    # one budget is still one integer
    tr = quiet_trainer(limit_test_batches=2, callbacks=[LinearProbe(n_train=300, per_class=7)])
    metrics = tr.test(DenseAE(4, hidden=[8]), datamodule=data, verbose=False)[0]
    assert "probe/acc_7" in metrics and "probe/acc_55" not in metrics


def test_callbacks_full_probes_at_100_and_55_labels_per_class_and_checks_the_budgets():
    cfg = compose_cfg("callbacks=full")
    assert list(cfg.callbacks.probe.per_class) == [100, 55]
    assert not [p for p in problems(cfg) if "per_class" in p]
    for bad in ("0", "[100,0]", "[]", "ten"):
        cfg = compose_cfg("callbacks=full", f"callbacks.probe.per_class={bad}")
        assert [p for p in problems(cfg) if p.startswith("callbacks.probe.per_class must be")]
    shown = headline.shown_in(headline.SUMMARY)
    assert shown.index("probe/acc_55") == shown.index("pca/probe_acc_100") + 1
    assert "pca/probe_acc_55" in shown


# --- the negative ELBO ---


def binary_batch(n: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    x = (torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) > 0.5).float()
    return {"input": x, "target": x, "label": torch.zeros(n, dtype=torch.long)}


def neg_elbo_of(model: DenseVAE, batch, batch_idx: int, stage: str = "val") -> float:
    """What the model's evaluation step logs as <stage>/neg_elbo for this batch."""
    logged = {}
    model.log = lambda name, value, **kw: logged.setdefault(name, value)
    step = model.validation_step if stage == "val" else model.test_step
    with torch.no_grad():
        step(batch, batch_idx)
    return float(logged[f"{stage}/neg_elbo"])


def test_neg_elbo_draws_independent_seeded_noise_for_every_batch_pass_and_seed() -> None:
    torch.manual_seed(0)
    model = DenseVAE(latent_dim=4, hidden=[16]).eval()
    with torch.no_grad():  # a wide posterior, so that the draw matters
        model.encoder[-1][-1].bias[4:].fill_(1.0)
    batch = binary_batch()
    first = neg_elbo_of(model, batch, 0)
    # the same batch, seed and pass: the same draw, whatever the global generator did since
    torch.rand(100)
    assert neg_elbo_of(model, batch, 0) == first
    # the same images at another batch index: another draw
    assert neg_elbo_of(model, batch, 1) != first
    # another validation pass (training step), another draw; a resumed run at the same step
    # draws the same
    model._trainer = SimpleNamespace(global_step=7, global_rank=0)
    later = neg_elbo_of(model, batch, 0)
    assert later != first and neg_elbo_of(model, batch, 0) == later
    model._trainer = None
    # another run seed, another draw
    model.noise_seed = 1
    assert neg_elbo_of(model, batch, 0) != first
    model.noise_seed = 0
    assert neg_elbo_of(model, batch, 0) == first
    # the draws are not the global generator's: a training step's noise is left alone
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    neg_elbo_of(model, batch, 0)
    assert torch.equal(torch.rand(3), expected)


def test_the_entrypoint_seeds_the_evaluation_draws_with_the_runs_seed(synthetic_root, tmp_path):
    for seed in (0, 11):
        cfg = compose_cfg(
            "model=vae",
            f"seed={seed}",
            f"data.root={synthetic_root}",
            "logger=none",
            "callbacks=none",
            *TINY,
            run_dir=tmp_path / f"run{seed}",
        )
        assert build.build(cfg, training=False).model.noise_seed == seed


def test_neg_elbo_and_nll_are_skipped_for_grey_targets_with_one_reason(synthetic_root, caplog):
    """transform=binarize-like runs: grey targets have no likelihood, so neither neg_elbo nor
    test/nll is logged, and each says so in one line with the same reason; binary targets
    (data.binarize_target) have both."""
    L.seed_everything(0)
    model = DenseVAE(latent_dim=3, hidden=[16])
    tr = quiet_trainer(
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=2,
        limit_test_batches=2,
        num_sanity_val_steps=0,
        callbacks=[ImportanceSampledNLL(n_samples=2)],
    )
    with caplog.at_level(logging.WARNING):
        tr.fit(model, datamodule=datamodule(synthetic_root))
        metrics = tr.test(model, datamodule=datamodule(synthetic_root), verbose=False)[0]
    assert not {"val/neg_elbo", "test/neg_elbo", "test/nll"} & metrics.keys()
    assert "val/neg_elbo" not in tr.callback_metrics
    lines = [r.getMessage() for r in caplog.records if " skipped: " in r.getMessage()]
    assert lines == [
        f"val/neg_elbo and test/neg_elbo skipped: {GREY_TARGETS}",
        f"test/nll skipped: {GREY_TARGETS}",
    ]

    binary = datamodule(synthetic_root, binarize_target="threshold")
    tr = quiet_trainer(limit_test_batches=2, callbacks=[ImportanceSampledNLL(n_samples=2)])
    metrics = tr.test(DenseVAE(latent_dim=3, hidden=[16]), datamodule=binary, verbose=False)[0]
    assert math.isfinite(metrics["test/neg_elbo"]) and math.isfinite(metrics["test/nll"])


# --- the novelty score ---


class Batches(L.Callback):
    """Keeps what every test batch held and what the test step reconstructed."""

    def __init__(self) -> None:
        self.seen: list[dict[str, torch.Tensor]] = []

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dl_idx=0):
        self.seen.append({**{k: v.clone() for k, v in batch.items()}, "recon": outputs["recon"]})


def test_the_novelty_score_is_the_error_against_the_clean_image_test_mse_averages(
    synthetic_root,
):
    """Under data.binarize_target the target is a binarized draw; the novelty score is each
    image's error against the clean grey image, whose mean is test/mse, not against it."""
    L.seed_everything(0)
    data = datamodule(synthetic_root, exclude_classes=[3], binarize_target="sample")
    model = DenseAE(latent_dim=4, hidden=[32])
    kept = Batches()
    tr = quiet_trainer(
        max_epochs=1, limit_train_batches=3, num_sanity_val_steps=0, callbacks=[NoveltyAUROC()]
    )
    tr.fit(model, datamodule=data)
    tr = quiet_trainer(callbacks=[NoveltyAUROC(), kept])
    metrics = tr.test(model, datamodule=data, verbose=False)[0]
    b = {k: torch.cat([s[k] for s in kept.seen]) for k in kept.seen[0]}
    assert not torch.equal(b["target"], b["clean"])  # the target is binarized
    assert torch.equal(b["clean"], data.images("test"))  # and the clean image is the dataset's
    score = reconstruction_error(b["recon"], b["clean"])
    against_target = reconstruction_error(b["recon"], b["target"])
    assert not torch.allclose(score, against_target)
    assert score.mean().item() == pytest.approx(metrics["test/mse"], rel=1e-5)
    novel = (b["label"] == 3).numpy()
    expected = roc_auc_score(novel, score.numpy())
    assert metrics[MODEL_AUROC] == pytest.approx(expected, abs=1e-6)
    assert roc_auc_score(novel, against_target.numpy()) != pytest.approx(expected, abs=1e-6)


# --- the floor of samples/fd ---


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


@pytest.mark.filterwarnings("ignore:Matrix is singular")  # dead ReLU features
def test_samples_fd_comes_with_the_distance_between_two_halves_of_the_test_set(
    tmp_path, synthetic_root, caplog
):
    L.seed_everything(0)
    data = datamodule(synthetic_root)
    downstream = DownstreamClassification(cache_dir=str(tmp_path / "cache"), epochs=1)
    # the whole (200-image) test set: a run that tests part of it scores fewer samples
    tr = quiet_trainer(callbacks=[downstream, SampleQuality(n_samples=80)])
    model = DenseVAE(latent_dim=3, hidden=[16])
    metrics = tr.test(model, datamodule=data, verbose=False)[0]
    floor = metrics[FLOOR]
    assert math.isfinite(floor) and floor > 0
    with torch.no_grad():
        features = downstream.classifier.eval().net[:-1](data.images("test")).double().numpy()
    # the first 80 test images (those samples/fd compares with) against the next 80
    assert floor == pytest.approx(frechet(features[:80], features[80:160]), rel=1e-3)
    assert floor < metrics["samples/fd"]  # an untrained decoder's samples are far from digits
    # shown wherever samples/fd is, right after it
    for place in headline.EVERYWHERE:
        shown = headline.shown_in(place)
        if "samples/fd" in shown:
            assert shown[shown.index("samples/fd") + 1] == FLOOR, place

    # a test set too small for two halves of n_samples: one line, no floor
    tr = quiet_trainer(callbacks=[downstream, SampleQuality(n_samples=150)])
    with caplog.at_level(logging.WARNING):
        metrics = tr.test(model, datamodule=data, verbose=False)[0]
    assert FLOOR not in metrics and "samples/fd" in metrics
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(FLOOR)]
    assert lines == [
        f"{FLOOR} skipped: it needs 300 test images (two halves of 150); there are 200"
    ]
