"""Evaluation callbacks on the synthetic MNIST: each output exists and is right on small inputs."""

from __future__ import annotations

import csv
import json
import logging
import math
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger, WandbLogger

from ae_lab.callbacks import EpochTimer
from ae_lab.callbacks.loggers import log_figure, log_hyperparams
from ae_lab.data import GaussianNoise, MNISTDataModule
from ae_lab.evaluation import (
    DownstreamClassification,
    Generation,
    ImportanceSampledNLL,
    LatentMap,
    PCABaseline,
    PerDigitMSE,
    ReconstructionGrid,
)
from ae_lab.evaluation import classifier as downstream_mod
from ae_lab.evaluation.accuracy import FiniteAccuracy
from ae_lab.evaluation.digits import PerClassMSE
from ae_lab.evaluation.generation import interpolations, prior_samples
from ae_lab.evaluation.latent_map import embed_2d
from ae_lab.evaluation.likelihood import importance_sampled_nll, log_likelihood
from ae_lab.models import DenseAE, DenseVAE
from ae_lab.models.base import AutoencoderModule
from tests.conftest import (
    RAW_NAMES,
    REPO,
    TINY,
    evaluating,
    quiet_trainer,
    run_in_process,
    run_stage,
    synthetic_digits,
    write_idx,
    write_mnist,
)


def trainer(tmp_path: Path, callbacks: list, **kwargs) -> L.Trainer:
    return quiet_trainer(
        max_epochs=1,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
        callbacks=callbacks,
        **kwargs,
    )


def datamodule(root: Path, **kwargs) -> MNISTDataModule:
    return MNISTDataModule(
        root=str(root), batch_size=64, eval_batch_size=64, val_size=100, **kwargs
    )


def test_per_class_mse_metric_matches_numpy() -> None:
    """Batch by batch, as the test loop feeds it; a class without images has a count of 0."""
    rng = np.random.default_rng(0)
    recon, target = rng.random((90, 1, 4, 4)), rng.random((90, 1, 4, 4))
    labels = rng.choice([0, 1, 3], 90)  # class 2 never occurs
    metric = PerClassMSE(n_classes=4)
    for part in np.array_split(np.arange(90), 4):
        metric.update(*(torch.from_numpy(a[part]) for a in (recon, target, labels)))
    means, counts = metric.compute()
    per_image = ((recon - target) ** 2).reshape(90, -1).mean(1)
    for k in range(4):
        assert counts[k] == (labels == k).sum()
        if counts[k]:
            assert means[k].item() == pytest.approx(per_image[labels == k].mean(), rel=1e-6)
    assert math.isnan(means[2])


def test_finite_accuracy_matches_numpy_and_is_nan_for_scores_that_are_not() -> None:
    rng = np.random.default_rng(1)
    scores, labels = rng.normal(size=(100, 10)), rng.integers(0, 10, 100)
    metric = FiniteAccuracy(10)
    for part in np.array_split(np.arange(100), 3):
        metric.update(torch.from_numpy(scores[part]), torch.from_numpy(labels[part]))
    expected = (scores.argmax(1) == labels).mean()
    assert metric.compute().item() == pytest.approx(expected)
    scores[17, 3] = np.nan  # one image a diverged model made NaN
    metric.update(torch.from_numpy(scores[10:20]), torch.from_numpy(labels[10:20]))
    assert math.isnan(metric.compute())


def test_per_digit_mse_averages_back_to_the_overall_mse(tmp_path, synthetic_root) -> None:
    L.seed_everything(0)
    data = datamodule(synthetic_root)
    model = DenseAE(latent_dim=4, hidden=[32])
    tr = trainer(tmp_path, [PCABaseline(), PerDigitMSE()], limit_train_batches=3)
    tr.fit(model, datamodule=data)
    metrics = tr.test(model, datamodule=data, verbose=False)[0]
    counts = torch.bincount(data.labels("test").long(), minlength=10).double()
    assert int(counts.sum()) == 200
    for prefix, overall in (("test/mse_digit", "test/mse"), ("pca/test_mse_digit", "pca/test_mse")):
        per_digit = torch.tensor([metrics[f"{prefix}/{k}"] for k in range(10)], dtype=torch.float64)
        assert len(set(per_digit.tolist())) > 1  # the digits really differ
        weighted = float((per_digit * counts).sum() / counts.sum())
        assert weighted == pytest.approx(metrics[overall], rel=1e-4)


class KeepBatches(L.Callback):
    """Keeps each test batch as the model and the callbacks saw it."""

    def __init__(self) -> None:
        self.batches: list[dict[str, torch.Tensor]] = []

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dl_idx=0):
        self.batches.append({k: v.clone() for k, v in batch.items()})


def count_calls(module: torch.nn.Module) -> list[int]:
    """A one-item list that counts the module's forward calls from now on."""
    calls = [0]
    module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_evaluations_share_the_test_steps_outputs_and_give_the_same_numbers(
    tmp_path, synthetic_root, classifier_cache
) -> None:
    """Per-digit MSE, downstream accuracy, the latent map and PCA's MSE take the test step's
    reconstructions and codes and one PCA reconstruction per batch, and give the numbers of
    running the model, PCA and the classifier again on every test batch, as they used to."""
    L.seed_everything(0)
    data = datamodule(synthetic_root, corruption=GaussianNoise(0.2))  # inputs are not targets
    model = DenseAE(latent_dim=2, hidden=[32])  # 2-D codes: the map's points are the codes
    pca, kept = PCABaseline(), KeepBatches()
    downstream = DownstreamClassification(cache_dir=classifier_cache, epochs=1)
    callbacks = [pca, PerDigitMSE(), downstream, LatentMap(n_points=150), kept]
    tr = trainer(tmp_path, callbacks, limit_train_batches=3)
    tr.fit(model, datamodule=data)
    model_runs, pca_runs = count_calls(model.encoder), count_calls(pca.reconstruct)
    metrics = tr.test(model, datamodule=data, verbose=False)[0]
    assert len(kept.batches) == 4  # 200 test images in batches of 64
    assert model_runs == pca_runs == [4]  # once per batch: the test step, the PCA baseline

    classify = downstream.classifier
    model.eval()
    with torch.no_grad():  # the old way: each evaluation runs what it needs on each batch
        old = []
        for b in kept.batches:
            x, y = b["input"], b["label"]
            o = {"original": b["target"], "recon": model(x), "pca": pca.reconstruct(x)}
            for name in ("original", "recon", "pca"):
                o[f"hit_{name}"] = classify(o[name]).argmax(1) == y
            o["code"] = model.encode(x)
            old.append(o)
    joined = {k: torch.cat([o[k] for o in old]) for k in old[0]}
    target = torch.cat([b["target"] for b in kept.batches])
    labels = torch.cat([b["label"] for b in kept.batches])
    for prefix, name in (("test/mse_digit", "recon"), ("pca/test_mse_digit", "pca")):
        per_image = (joined[name] - target).pow(2).flatten(1).mean(1)
        for k in range(10):
            expected = per_image[labels == k].mean().item()
            assert metrics[f"{prefix}/{k}"] == pytest.approx(expected, rel=1e-5)
    assert metrics["test/mse"] == pytest.approx((joined["recon"] - target).pow(2).mean().item())
    assert metrics["pca/test_mse"] == pytest.approx((joined["pca"] - target).pow(2).mean().item())
    for name in ("original", "recon", "pca"):
        expected = joined[f"hit_{name}"].float().mean().item()
        assert metrics[f"downstream/acc_{name}"] == pytest.approx(expected, abs=1e-6)
    points = np.load(tmp_path / "figures" / "latent_map.npz")["points"]
    np.testing.assert_allclose(points, joined["code"][:150].numpy(), rtol=1e-6)


def test_downstream_accuracy_on_originals_is_the_classifier_accuracy(
    tmp_path, synthetic_root
) -> None:
    data = datamodule(synthetic_root)
    cb = DownstreamClassification(cache_dir=str(tmp_path / "cache"), epochs=2, seed=0)
    model = DenseAE(latent_dim=8, hidden=[32])
    tr = trainer(tmp_path, [PCABaseline(), cb], limit_train_batches=2)
    tr.fit(model, datamodule=data)
    metrics = tr.test(model, datamodule=data, verbose=False)[0]
    cached = cb.cache_path(data)
    assert cached.exists()
    # the cached classifier, tested on its own inputs by Lightning, scores what the callback logged
    classifier = DownstreamClassification._load(cached, torch.device("cpu"))
    own = trainer(tmp_path, []).test(classifier, datamodule=data, verbose=False)[0]
    assert metrics["downstream/acc_original"] == pytest.approx(own["test/acc"], abs=1e-6)
    assert own["test/acc"] > 0.3  # trained: the synthetic digits are learnable
    for name in ("acc_recon", "acc_pca"):
        assert 0.0 <= metrics[f"downstream/{name}"] <= 1.0


def test_downstream_classifier_trains_once_and_is_reused(tmp_path, synthetic_root, monkeypatch):
    data = datamodule(synthetic_root)
    data.setup()
    calls = []
    real_train = downstream_mod.train_classifier

    def counting_train(*args, **kwargs):
        calls.append(1)
        time.sleep(0.2)  # widen the race window
        return real_train(*args, **kwargs)

    monkeypatch.setattr(downstream_mod, "train_classifier", counting_train)
    cbs = [DownstreamClassification(cache_dir=str(tmp_path), epochs=1) for _ in range(2)]
    loaded = [None, None]

    def load(i: int) -> None:
        loaded[i] = cbs[i].load_classifier(data, torch.device("cpu"))

    threads = [threading.Thread(target=load, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert all(m is not None for m in loaded)
    a, b = (m.state_dict() for m in loaded)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not list(tmp_path.glob("*.tmp*"))  # written by rename, nothing half-written left
    # another epoch count is another classifier
    other = DownstreamClassification(cache_dir=str(tmp_path), epochs=2)
    assert other.cache_path(data) != cbs[0].cache_path(data)


def test_downstream_uses_a_given_checkpoint(tmp_path, synthetic_root) -> None:
    from ae_lab.models import CNNClassifier

    data = datamodule(synthetic_root)
    classifier = CNNClassifier()
    tr = trainer(tmp_path, [], limit_train_batches=2)
    tr.fit(classifier, datamodule=data)
    tr.save_checkpoint(tmp_path / "clf.ckpt")  # a Lightning checkpoint, as model=classifier writes
    cb = DownstreamClassification(checkpoint=str(tmp_path / "clf.ckpt"), cache_dir=str(tmp_path))
    loaded = cb.load_classifier(data, torch.device("cpu"))
    assert torch.equal(loaded.net[0].weight, classifier.net[0].weight)
    assert not list(tmp_path.glob("classifier-*"))  # nothing trained


def test_vae_evaluation_outputs(tmp_path, synthetic_root) -> None:
    """One fit + test of a VAE with every per-run evaluation callback on."""
    L.seed_everything(0)
    data = datamodule(synthetic_root, binarize_target="sample")
    model = DenseVAE(latent_dim=3, hidden=[32])
    timer = EpochTimer()
    callbacks = [
        timer,
        Generation(n_samples=16, n_pairs=3, steps=5),
        LatentMap(n_points=60, max_iter=250),
        ImportanceSampledNLL(n_samples=20),
    ]
    tr = trainer(tmp_path, callbacks, limit_train_batches=3, limit_test_batches=2)
    tr.fit(model, datamodule=data)
    assert timer.samples == 3 * 64
    assert tr.callback_metrics["time/epoch_s"] > 0
    assert tr.callback_metrics["time/samples_per_s"] > 0
    metrics = tr.test(model, datamodule=data, verbose=False)[0]
    # a lower bound on -log p(x) for binary 784-pixel images: positive, at most 784 log 2 + KL
    assert 0 < metrics["test/nll"] < metrics["test/neg_elbo"] + 1.0
    figures = tmp_path / "figures"
    for name in ("prior_samples.png", "interpolations.png", "latent_map.png"):
        assert (figures / name).stat().st_size > 1000
    from PIL import Image

    # 3 rows of 5 steps and a 4 x 4 grid, each digit drawn at about 60 pixels, with labels
    width, height = Image.open(figures / "interpolations.png").size
    assert width >= 5 * 50 and height >= 3 * 50
    width, height = Image.open(figures / "prior_samples.png").size
    assert width >= 4 * 50 and height >= 4 * 50


def test_interpolations_start_and_end_at_the_reconstructions() -> None:
    model = DenseAE(latent_dim=4, hidden=[16]).eval()
    a, b = torch.rand(2, 1, 28, 28), torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        path = interpolations(model, a, b, steps=4).view(2, 4, 1, 28, 28)
        assert torch.allclose(path[:, 0], model(a), atol=1e-6)
        assert torch.allclose(path[:, -1], model(b), atol=1e-6)


def test_prior_samples_are_decoded_from_the_prior_not_from_data() -> None:
    model = DenseVAE(latent_dim=2, hidden=[16]).eval()
    with torch.no_grad():
        images = prior_samples(model, 9, seed=1)
        z = torch.randn(9, 2, generator=torch.Generator().manual_seed(1))
        assert torch.allclose(images, model.decode(z))
    assert images.shape == (9, 1, 28, 28)


def test_pairs_join_different_digits() -> None:
    a, b = Generation.pairs(torch.tensor([1, 1, 2, 3, 3]), 8)
    assert a and all(x < y for x, y in zip(a, b, strict=True))
    labels = torch.tensor([1, 1, 2, 3, 3])
    assert all(labels[i] != labels[j] for i, j in zip(a, b, strict=True))


def test_latent_map_plots_2d_codes_directly_and_embeds_others() -> None:
    codes = torch.randn(50, 2).numpy()
    assert (embed_2d(codes) == codes).all()
    wide = torch.randn(50, 6).numpy()
    first, again = embed_2d(wide, seed=3, max_iter=250), embed_2d(wide, seed=3, max_iter=250)
    assert first.shape == (50, 2)
    assert (first == again).all()  # seeded


def test_importance_sampled_nll_matches_exact_likelihood_for_a_1d_latent() -> None:
    """With one latent dimension, log p(x) = log of an integral over z: quadrature gives it."""
    torch.manual_seed(0)
    model = DenseVAE(latent_dim=1, hidden=[8]).eval()
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.mul_(0.3)
        x = torch.bernoulli(torch.full((2, 1, 28, 28), 0.3))
        z = torch.linspace(-10, 10, 20001).unsqueeze(1)
        dz = float(z[1] - z[0])
        logits = model.decoder(z)
        exact = []
        for xi in x:
            log_px_z = log_likelihood(logits, xi.expand(len(z), -1, -1, -1), "bce")
            log_prior = -0.5 * (z.squeeze(1) ** 2 + math.log(2 * math.pi))
            exact.append(-(torch.logsumexp(log_px_z + log_prior, 0) + math.log(dz)))
        gen = torch.Generator().manual_seed(0)
        estimate = importance_sampled_nll(model, x, x, n_samples=2000, generator=gen)
        one = importance_sampled_nll(model, x, x, n_samples=1, generator=gen)
    exact = torch.stack(exact)
    assert estimate == pytest.approx(exact, abs=0.05)
    assert (one >= exact - 1.0).all()  # one sample: a noisy upper bound, never far below


def test_binarized_targets_are_binary_and_fixed_per_evaluation_batch(synthetic_root) -> None:
    data = datamodule(synthetic_root, binarize_target="sample")
    data.setup()
    x, y = data.images("test")[:8], data.labels("test")[:8]
    train = [data.on_after_batch_transfer((x, y, 0), 0)["target"] for _ in range(2)]
    assert not torch.equal(*train)  # training: a fresh draw every pass
    data.trainer = evaluating()
    first = data.on_after_batch_transfer((x, y, 0), 0)
    again = data.on_after_batch_transfer((x, y, 0), 0)
    assert set(first["target"].unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(first["target"], first["input"])  # no corruption: the model sees it too
    assert torch.equal(first["target"], again["target"])
    # each pixel is 1 with its intensity as probability
    assert abs(first["target"].mean() - x.mean()) < 0.02
    threshold = datamodule(synthetic_root, binarize_target="threshold")
    out = threshold.on_after_batch_transfer((x, y, 0), 0)
    assert torch.equal(out["target"], (x > 0.5).float())


# --- degenerate models: every evaluation gives its result or one warning, never a crash ---


def collapse(model: torch.nn.Module, value: float) -> None:
    """Every encoder weight set to ``value``: 0 gives every image the same code (a collapsed
    bottleneck, as dead ReLUs do), NaN the codes of a diverged model."""
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.fill_(value)


def skipped(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What each evaluation that gave up warned about, in order."""
    return [r.getMessage().split(" skipped:")[0] for r in caplog.records if " skipped:" in r.msg]


def stub_trainer(tmp_path: Path, rank_zero: bool = True) -> SimpleNamespace:
    """What the figure callbacks read from a Trainer: run dir, loggers, the process's rank."""
    return SimpleNamespace(
        is_global_zero=rank_zero,
        default_root_dir=str(tmp_path),
        loggers=[],
        global_step=0,
        sanity_checking=False,
        callbacks=[],
        max_epochs=1,
        current_epoch=0,
    )


@pytest.mark.parametrize(
    "value, gave_up",
    [
        (0.0, ["latent map"]),  # constant codes: t-SNE's own crash (exit 139) before the guard
        (math.nan, ["interpolations", "latent map"]),  # the prior samples' decoder is intact
    ],
    ids=["constant-codes", "nan-codes"],
)
def test_a_collapsed_or_diverged_model_is_evaluated_with_one_warning_per_skip(
    tmp_path, synthetic_root, classifier_cache, caplog, value, gave_up
) -> None:
    data = datamodule(synthetic_root, binarize_target="sample")  # a likelihood to estimate
    model = DenseVAE(latent_dim=8, hidden=[32])
    collapse(model, value)
    callbacks = [
        PCABaseline(),
        PerDigitMSE(),
        Generation(n_samples=4, n_pairs=2, steps=3),
        LatentMap(n_points=60, max_iter=250),
        ImportanceSampledNLL(n_samples=4),
        DownstreamClassification(cache_dir=classifier_cache, epochs=1),
    ]
    tr = trainer(tmp_path, callbacks, limit_test_batches=2)
    with caplog.at_level(logging.WARNING):
        metrics = tr.test(model, datamodule=data, verbose=False)[0]
    assert sorted(skipped(caplog)) == gave_up
    figures = {p.name for p in (tmp_path / "figures").glob("*.png")}
    assert figures == {"prior_samples.png", "interpolations.png"} - {f"{g}.png" for g in gave_up}
    assert math.isfinite(metrics["pca/test_mse"])
    diverged = math.isnan(value)
    for key in ("test/mse", "test/nll", "test/mse_digit/3", "downstream/acc_recon"):
        assert math.isnan(metrics[key]) == diverged, key  # NaN in, NaN out: no made-up number
    assert 0 < metrics["downstream/acc_original"] <= 1
    nan_accuracy = [r for r in caplog.records if "downstream/acc_recon is NaN" in r.getMessage()]
    assert len(nan_accuracy) == int(diverged)


def test_a_test_set_of_one_digit_is_evaluated(tmp_path, caplog) -> None:
    """Per-digit errors for the one digit there is, a latent map of fewer test images than it
    asks for, and no interpolation rows (they join two different digits)."""
    root = write_mnist(tmp_path / "data")
    raw = root / "MNIST" / "raw"
    images, _ = synthetic_digits(40, seed=5)
    write_idx(raw / RAW_NAMES[False][1], np.full(40, 7, dtype=np.uint8))
    write_idx(raw / RAW_NAMES[False][0], images)
    model = DenseAE(latent_dim=4, hidden=[16])
    callbacks = [PerDigitMSE(), Generation(n_pairs=2), LatentMap(n_points=500, max_iter=250)]
    tr = trainer(tmp_path, callbacks)
    with caplog.at_level(logging.WARNING):
        metrics = tr.test(model, datamodule=datamodule(root), verbose=False)[0]
    assert skipped(caplog) == ["interpolations"]
    assert [k for k in metrics if "_digit/" in k] == ["test/mse_digit/7"]
    assert metrics["test/mse_digit/7"] == pytest.approx(metrics["test/mse"], rel=1e-5)
    assert (tmp_path / "figures" / "latent_map.png").exists()


def batch_of(n: int, label: int | None = None) -> dict[str, torch.Tensor]:
    images, labels = synthetic_digits(n, seed=3)
    x = torch.from_numpy(images).float().div(255).unsqueeze(1)
    y = torch.full((n,), label) if label is not None else torch.from_numpy(labels).long()
    return {"input": x, "target": x.clone(), "label": y}


def outputs_of(model: AutoencoderModule, batch: dict[str, torch.Tensor]) -> dict:
    """What the model's test step hands the callbacks for ``batch``."""
    with torch.no_grad():
        return model.eval().shared_step(batch).outputs()


@pytest.mark.parametrize(
    "n_images, value, reason",
    [
        (1, 0.1, "1 test code(s)"),  # fewer test images than t-SNE can embed
        (50, 0.0, "all 50 codes are identical"),
        (50, math.nan, "50 of 50 codes are not finite"),
    ],
)
def test_latent_map_skips_codes_no_map_can_show(tmp_path, caplog, n_images, value, reason):
    model = DenseAE(latent_dim=8, hidden=[16]).eval()
    collapse(model, value)
    cb, tr = LatentMap(n_points=100, max_iter=250), stub_trainer(tmp_path)
    batch = batch_of(n_images)
    with caplog.at_level(logging.WARNING):
        run_stage([cb], tr, model, "test", (outputs_of(model, batch), batch))
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and warnings[0].startswith("latent map skipped:")
    assert reason in warnings[0]
    assert not (tmp_path / "figures" / "latent_map.png").exists()


def test_reconstruction_grid_skips_reconstructions_that_are_not_finite(tmp_path, caplog):
    model = DenseAE(latent_dim=4, hidden=[16]).eval()
    collapse(model, math.nan)
    cb, tr = ReconstructionGrid(n_images=4), stub_trainer(tmp_path)
    batch = batch_of(8)
    with caplog.at_level(logging.WARNING):
        run_stage([cb], tr, model, "val", (outputs_of(model, batch), batch))
    assert skipped(caplog) == ["reconstruction grid"]
    assert not (tmp_path / "figures" / "reconstructions.png").exists()


def test_codes_t_sne_would_crash_on_are_refused_or_mapped_in_a_subprocess() -> None:
    """Identical codes, and codes that differ only by denormals, made scikit-learn's t-SNE
    segfault (its PCA initialisation divides by a spread of 0). Run where a crash cannot take
    the test session with it."""
    script = """
import numpy as np
from ae_lab.evaluation.latent_map import DegenerateCodes, embed_2d
codes = np.zeros((100, 8), np.float32)
try:
    embed_2d(codes, max_iter=250)
    raise SystemExit("identical codes were embedded")
except DegenerateCodes:
    pass
codes[::7, 3] = 1e-40  # distinct, but their spread is 0 in float32 arithmetic
assert np.isfinite(embed_2d(codes, max_iter=250)).all()
huge = np.random.default_rng(0).normal(size=(100, 8)).astype(np.float32) * 1e30
assert np.isfinite(embed_2d(huge, max_iter=250)).all()  # squares overflow float32
print("mapped")
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "mapped"


# --- under DDP only the first process writes files ---


@pytest.mark.parametrize("rank_zero", [True, False])
def test_only_the_first_process_writes_figures(tmp_path, rank_zero) -> None:
    model = DenseVAE(latent_dim=3, hidden=[16]).eval()
    tr = stub_trainer(tmp_path, rank_zero=rank_zero)
    grid, gen, latent = ReconstructionGrid(4), Generation(4, 2, 3), LatentMap(40, max_iter=250)
    eight, forty = batch_of(8), batch_of(40)
    run_stage([grid], tr, model, "val", (outputs_of(model, eight), eight))
    for cb in (gen, latent):
        run_stage([cb], tr, model, "test", (outputs_of(model, forty), forty))
    written = {p.name for p in tmp_path.rglob("*") if p.is_file()}
    expected = {"reconstructions.png", "prior_samples.png", "interpolations.png", "latent_map.png"}
    assert written == ({*expected, "latent_map.npz"} if rank_zero else set())


@pytest.mark.integration
def test_a_model_with_a_constant_code_finishes_or_fails_with_a_message(tmp_path, mnist_root):
    """``model.hidden=[0]`` gives every image one code, whose t-SNE map used to kill the
    interpreter (exit 139: no message, no job.json, the rest of a sweep lost)."""
    run = tmp_path / "run"
    # in this process: a crash of t-SNE itself is test_codes_t_sne_would_crash_on_..._subprocess
    ended = run_in_process(
        "model.hidden=[0]", *TINY, "threads=1", run_dir=run, data_root=mnist_root, check=False
    )
    if ended.code:  # a rule that refuses a layer of width 0 before any work
        assert ended.message.startswith("model.hidden")
    else:
        log = (run / "train.log").read_text()
        assert "latent map skipped: all 500 codes are identical" in log
        assert "test/mse" in json.loads((run / "metrics.json").read_text())


# --- figures and hyperparameters reach every logger; PNGs in the run dir whatever the loggers ---


class RecordingMLflow(MLFlowLogger):
    """MLflow's logger with a client that records the artifacts it is given (mlflow itself is
    not installed here, and its logger needs it only to make that client)."""

    def __init__(self) -> None:
        self.artifacts: list[tuple[str, str, str | None]] = []

    @property
    def experiment(self) -> SimpleNamespace:
        def log_artifact(run_id: str, local_path: str, artifact_path: str | None = None) -> None:
            self.artifacts.append((run_id, local_path, artifact_path))

        return SimpleNamespace(log_artifact=log_artifact)

    @property
    def run_id(self) -> str:
        return "run-1"


class RecordingWandb(WandbLogger):
    """W&B's logger with what its ``log_image`` is given recorded instead of uploaded."""

    def __init__(self) -> None:
        self.images: list[tuple[str, list, int | None]] = []

    def log_image(self, key: str, images: list, step: int | None = None, **kwargs) -> None:
        self.images.append((key, images, step))


def announced(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "ae_lab.callbacks.loggers"]


def test_figures_reach_every_logger_that_shows_images(tmp_path, caplog) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from ae_lab.evaluation.latent_map import plot_map

    tb = TensorBoardLogger(tmp_path, name="", version="")
    mlflow, wandb = RecordingMLflow(), RecordingWandb()
    tr = stub_trainer(tmp_path)
    tr.loggers, tr.global_step = [tb, CSVLogger(tmp_path, name="csv"), mlflow, wandb], 7
    figure = plot_map(np.random.default_rng(0).random((20, 2)), np.arange(20) % 10, "codes")
    with caplog.at_level(logging.INFO):
        grid = log_figure(tr, "val/reconstructions", torch.rand(3, 10, 12))
        latent_map = log_figure(tr, "test/latent_map", figure)
    figures = tmp_path / "figures"
    assert (grid, latent_map) == (figures / "reconstructions.png", figures / "latent_map.png")
    assert mlflow.artifacts == [("run-1", str(p), "figures") for p in (grid, latent_map)]
    assert wandb.images == [
        ("val/reconstructions", [str(grid)], 7),
        ("test/latent_map", [str(latent_map)], 7),
    ]
    tb.experiment.flush()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert set(events.Tags()["images"]) == {"val/reconstructions", "test/latent_map"}
    shown = events.Images("val/reconstructions")[0]
    assert (shown.step, shown.width, shown.height) == (7, 12, 10)
    assert announced(caplog) == []  # the loggers show them


def test_without_a_logger_that_shows_images_one_line_says_where_the_pngs_are(tmp_path, caplog):
    tr = stub_trainer(tmp_path)
    tr.loggers = [CSVLogger(tmp_path, name="csv")]
    with caplog.at_level(logging.INFO):
        for tag in ("val/reconstructions", "val/reconstructions", "test/interpolations"):
            log_figure(tr, tag, torch.rand(3, 8, 8))
    pngs = {p.name for p in (tmp_path / "figures").iterdir()}
    assert pngs == {"reconstructions.png", "interpolations.png"}
    [line] = announced(caplog)
    assert str(tmp_path / "figures") in line and "CSVLogger" in line


def test_hyperparameters_reach_every_logger_with_the_final_metrics(tmp_path) -> None:
    import yaml
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb, table = TensorBoardLogger(tmp_path, name="", version=""), CSVLogger(tmp_path, name="csv")
    tr = stub_trainer(tmp_path)
    tr.loggers, tr.global_step = [tb, table], 5
    params = {"model": "ae", "latent": 8, "transform_params": {"p": 0.25}}
    log_hyperparams(tr, params, {"test/mse": 0.02, "test/mse_ratio": 0.9})
    for logger in (tb, table):
        logger.save()
    assert yaml.safe_load((Path(table.log_dir) / "hparams.yaml").read_text()) == params
    with open(Path(table.log_dir) / "metrics.csv") as f:
        [row] = list(csv.DictReader(f))
    assert (row["step"], float(row["test/mse_ratio"])) == ("5", pytest.approx(0.9))
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    hparams = events.PluginTagToContent("hparams")  # what the HPARAMS tab reads
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(hparams)
    assert b"transform_params/p" in hparams["_hparams_/session_start_info"]
    assert events.Scalars("test/mse_ratio")[0].value == pytest.approx(0.9)


@pytest.mark.integration
@pytest.mark.parametrize("logger", ["csv", "none"])
def test_a_run_without_an_image_logger_writes_its_figures_and_says_where(
    tmp_path, mnist_root, logger
) -> None:
    """``logger=csv`` or ``none``: no logger shows images, so the PNGs are all there is, and one
    line of the run's log says where; the CSV logger gets the hyperparameters and final metrics
    (and no logger at all is no reason to refuse the learning-rate monitor's run)."""
    import yaml

    run = tmp_path / "run"
    overrides = (f"logger={logger}", "threads=1", "callbacks.latent_map.n_points=100")
    run_in_process(*overrides, *TINY, run_dir=run, data_root=mnist_root)
    figures = {p.name for p in (run / "figures").glob("*.png")}
    assert figures == {"reconstructions.png", "interpolations.png", "latent_map.png"}
    log = (run / "train.log").read_text()
    assert log.count("figures are written as PNG files to") == 1
    assert f"to {run / 'figures'} (" in log
    assert not list(run.rglob("events.out.tfevents.*"))
    if logger == "csv":
        hparams = yaml.safe_load((run / "csv" / "hparams.yaml").read_text())
        assert (hparams["model"], hparams["latent"]) == ("ae", 32)
        assert "test/mse_ratio" in (run / "csv" / "metrics.csv").read_text().splitlines()[0]
