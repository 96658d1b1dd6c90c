"""The linear probe of the codes and the sample quality of VAEs, against scikit-learn and scipy."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import scipy.linalg
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ae_lab.data import MNISTDataModule
from ae_lab.evaluation import (
    DownstreamClassification,
    LinearProbe,
    PCABaseline,
    SampleQuality,
)
from ae_lab.evaluation.generation import prior_samples
from ae_lab.evaluation.probe import class_scores, label_budget
from ae_lab.evaluation.samples import PredictedClasses, frechet_distance, histogram_entropy
from ae_lab.models import DenseAE, DenseVAE
from tests.conftest import quiet_trainer


def datamodule(root) -> MNISTDataModule:
    return MNISTDataModule(root=str(root), batch_size=64, eval_batch_size=64, val_size=100)


def sklearn_accuracy(train, train_labels, test, test_labels) -> float:
    """scikit-learn's own pipeline: standardise, multinomial logistic regression, accuracy."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return probe.fit(train, train_labels).score(test, test_labels)


def test_label_budget_draws_that_many_of_each_class_with_its_seed() -> None:
    labels = np.random.default_rng(0).integers(0, 10, 2000)
    labels[labels == 3] = 4  # class 3 absent
    labels[:5] = 3  # ... but for five images: all of them are taken
    picked = label_budget(labels, 20, seed=1)
    counts = np.bincount(labels[picked], minlength=10)
    assert counts[3] == 5 and all(counts[k] == 20 for k in range(10) if k != 3)
    assert np.array_equal(picked, label_budget(labels, 20, seed=1))
    assert not np.array_equal(picked, label_budget(labels, 20, seed=2))


def test_probe_scores_are_nan_for_codes_that_are_not_finite_and_for_no_probe() -> None:
    rng = np.random.default_rng(0)
    codes, labels = rng.normal(size=(60, 3)), np.repeat([0, 2, 5], 20)
    probe = make_pipeline(StandardScaler(), LogisticRegression()).fit(codes, labels)
    codes[4, 1] = np.nan
    scores = class_scores(probe, codes, 7).numpy()
    assert scores.shape == (60, 7) and np.isnan(scores[4]).all()
    keep = np.arange(60) != 4
    # a column per class index: the probe's classes 0, 2, 5 land in their own columns
    assert np.array_equal(scores[keep].argmax(1), probe.predict(codes[keep]))
    assert np.isnan(class_scores(None, codes, 7).numpy()).all()


def test_linear_probe_accuracy_is_scikit_learns_on_the_same_codes(tmp_path, synthetic_root):
    """Through a fit and a test: the logged accuracies are those of scikit-learn's pipeline on
    the model's codes of the training images (all, and the label budget) and the test step's
    codes, and on the codes of the run's fitted PCA."""
    L.seed_everything(0)
    data = datamodule(synthetic_root)
    model = DenseAE(latent_dim=4, hidden=[32])
    pca, probe = PCABaseline(), LinearProbe(n_train=None, per_class=10, seed=3)
    tr = quiet_trainer(
        max_epochs=1, limit_train_batches=3, num_sanity_val_steps=0, callbacks=[pca, probe]
    )
    tr.fit(model, datamodule=data)
    metrics = tr.test(model, datamodule=data, verbose=False)[0]
    model.eval()
    x, y = data.images("train"), data.labels("train").numpy()
    tx, ty = data.images("test"), data.labels("test").numpy()
    with torch.no_grad():
        codes = {"probe/": (model.encode(x).double().numpy(), model.encode(tx).double().numpy())}
    flat = (x.flatten(1).double().numpy(), tx.flatten(1).double().numpy())
    codes["pca/probe_"] = tuple(pca.pca.transform(f) for f in flat)
    budget = label_budget(y, 10, seed=3)
    assert len(budget) == 100
    for prefix, (train, test) in codes.items():
        assert train.shape[1] == 4
        full = sklearn_accuracy(train, y, test, ty)
        small = sklearn_accuracy(train[budget], y[budget], test, ty)
        assert metrics[f"{prefix}acc"] == pytest.approx(full, abs=1e-6)
        assert metrics[f"{prefix}acc_10"] == pytest.approx(small, abs=1e-6)
    assert metrics["probe/acc"] > 0.5  # the synthetic digits are linearly separable


def test_linear_probe_of_codes_that_are_not_finite_is_nan_with_a_warning(
    tmp_path, synthetic_root, caplog
):
    data = datamodule(synthetic_root)
    model = DenseAE(latent_dim=4, hidden=[32])
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.fill_(math.nan)  # a diverged encoder
    tr = quiet_trainer(limit_test_batches=2, callbacks=[LinearProbe(n_train=200, per_class=5)])
    with caplog.at_level(logging.WARNING):
        metrics = tr.test(model, datamodule=data, verbose=False)[0]
    assert math.isnan(metrics["probe/acc"]) and math.isnan(metrics["probe/acc_5"])
    assert sum("probe/acc" in r.getMessage() for r in caplog.records) == 2


def test_frechet_distance_is_the_closed_form_of_scipy() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 5))
    b = rng.normal(size=(200, 5)) @ rng.normal(size=(5, 5)) * 0.5 + 1.0
    fid = frechet_distance(5)
    for part in np.array_split(a, 3):  # batch by batch, as features come
        fid.update(torch.from_numpy(part).float(), real=True)
    fid.update(torch.from_numpy(b).float(), real=False)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    expected = ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root)
    assert fid.compute().item() == pytest.approx(expected, rel=1e-4)


def test_confidence_and_class_entropy_of_crafted_logits() -> None:
    big, small = 10.0, 0.1  # softmax top probability ~1 and ~0.11 among 10 classes
    logits = torch.zeros(8, 10)
    for i, k in enumerate([0, 0, 1, 2, 3, 3, 3, 7]):
        logits[i, k] = big if i < 5 else small
    metric = PredictedClasses(10, confidence=0.9)
    metric.update(logits[:3])
    metric.update(logits[3:])
    confident, entropy = metric.compute()
    assert confident.item() == pytest.approx(5 / 8)
    p = np.array([2, 1, 1, 3, 1]) / 8  # classes 0, 1, 2, 3, 7
    assert entropy.item() == pytest.approx(-(p * np.log(p)).sum())
    assert histogram_entropy(torch.ones(10)).item() == pytest.approx(math.log(10))
    assert histogram_entropy(torch.tensor([0, 5, 0])).item() == 0.0
    metric.update(torch.full((1, 10), math.nan))  # one sample a diverged decoder made
    assert all(math.isnan(v) for v in metric.compute())


@pytest.mark.filterwarnings("ignore:Matrix is singular")  # dead ReLU features
def test_sample_quality_scores_prior_samples_with_the_downstream_classifier(
    synthetic_root, classifier_cache, caplog
):
    """The one classifier the downstream callback loads; FD of its penultimate features of the
    prior samples (the generation grid's seed) and of the first test images; a VAE only."""
    L.seed_everything(0)
    data = datamodule(synthetic_root)
    downstream = DownstreamClassification(cache_dir=classifier_cache, epochs=1)
    samples = SampleQuality(n_samples=150, seed=4)
    model = DenseVAE(latent_dim=3, hidden=[32])
    tr = quiet_trainer(
        max_epochs=1, limit_train_batches=3, num_sanity_val_steps=0, callbacks=[downstream, samples]
    )
    tr.fit(model, datamodule=data)
    metrics = tr.test(model, datamodule=data, verbose=False)[0]
    classifier = downstream.classifier.eval()
    with torch.no_grad():
        fake = classifier.net[:-1](prior_samples(model.eval(), 150, seed=4)).double().numpy()
        real = classifier.net[:-1](data.images("test")[:150]).double().numpy()
        logits = classifier(prior_samples(model, 150, seed=4))
    cov_r, cov_f = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    root = scipy.linalg.sqrtm(cov_r @ cov_f).real
    fd = ((real.mean(0) - fake.mean(0)) ** 2).sum() + np.trace(cov_r + cov_f - 2 * root)
    assert metrics["samples/fd"] == pytest.approx(fd, rel=1e-3)
    top = logits.softmax(1).amax(1)
    assert metrics["samples/confident"] == pytest.approx((top >= 0.9).float().mean().item())
    counts = torch.bincount(logits.argmax(1), minlength=10)
    assert metrics["samples/class_entropy"] == pytest.approx(histogram_entropy(counts).item())
    # an autoencoder without a prior: nothing; a VAE without the downstream callback: one line
    tr = quiet_trainer(limit_test_batches=1, callbacks=[SampleQuality(n_samples=10)])
    assert "samples/fd" not in tr.test(DenseAE(4, hidden=[8]), datamodule=data, verbose=False)[0]
    caplog.clear()  # the lines of the run above (grey targets: no neg_elbo; no room for a floor)
    with caplog.at_level(logging.WARNING):
        assert "samples/fd" not in tr.test(model, datamodule=data, verbose=False)[0]
    assert [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()] == [
        "sample quality skipped: it needs the downstream classifier (callbacks.downstream)"
    ]


def test_a_downstream_callback_without_accuracies_serves_only_the_vaes_sample_quality(
    synthetic_root, classifier_cache
):
    """accuracies=false (the university report): no downstream/acc_*, no classifier for a model
    without a prior, and the VAE's sample quality still scored with it."""
    data = datamodule(synthetic_root)
    downstream = DownstreamClassification(cache_dir=classifier_cache, epochs=1, accuracies=False)
    cached = sorted(Path(classifier_cache).iterdir())  # the session's (trained by another test)
    callbacks = [downstream, SampleQuality(n_samples=20)]
    tr = quiet_trainer(limit_test_batches=2, callbacks=callbacks)
    ae_metrics = tr.test(DenseAE(4, hidden=[8]), datamodule=data, verbose=False)[0]
    assert downstream.classifier is None and sorted(Path(classifier_cache).iterdir()) == cached
    assert not [k for k in ae_metrics if k.startswith(("downstream/", "samples/"))]
    tr = quiet_trainer(limit_test_batches=2, callbacks=callbacks)
    vae_metrics = tr.test(DenseVAE(latent_dim=3, hidden=[16]), datamodule=data, verbose=False)[0]
    assert downstream.classifier is not None and "samples/fd" in vae_metrics
    assert not [k for k in vae_metrics if k.startswith("downstream/")]
