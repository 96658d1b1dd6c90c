"""The whole model zoo through the entrypoint (in this process) on the real MNIST, with tiny
limits: one multirun for every model, one run for an overcomplete sparse denoising autoencoder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from tests.conftest import (
    AUTOENCODERS,
    CLASSIFIERS,
    MODELS,
    TINY,
    run_in_process,
    scalars,
    sweep_in_process,
)

pytestmark = pytest.mark.integration

# the names each model logs beyond train/loss, val/loss, val/mse and test/mse
EXTRA = {
    "sparse_ae": ("sparsity_penalty", "code_mean", "active_frac", "recon"),
    "contractive_ae": ("contractive_penalty", "recon"),
    "vae": ("kl", "recon"),
    "conv_vae": ("kl", "recon"),
    "beta_vae": ("kl", "recon"),
}
# the progress bar callback and enable_progress_bar=false cannot be combined; a t-SNE map of 50
# codes (every model's full map: tests/test_any_shape_e2e.py)
QUIET = (
    *TINY,
    "~callbacks.progress_bar",
    "callbacks.latent_map.n_points=50",
    "callbacks.latent_map.max_iter=250",
)


def job_dirs(sweep: Path) -> dict[str, Path]:
    """Sweep job directories by the model they trained."""
    jobs = {}
    for overrides in sweep.glob("*/.hydra/overrides.yaml"):
        model = next(o for o in yaml.safe_load(overrides.read_text()) if o.startswith("model="))
        jobs[model.removeprefix("model=")] = overrides.parent.parent
    return jobs


def check_common(run: Path) -> dict[str, float]:
    metrics = json.loads((run / "metrics.json").read_text())
    assert all(math.isfinite(v) for v in metrics.values()), metrics
    hparams = yaml.safe_load((run / "hparams.yaml").read_text())
    assert metrics["n_params"] == hparams["n_params"] > 0
    return metrics


def test_every_model_trains_through_the_entrypoint(tmp_path: Path, mnist_root: Path) -> None:
    sweep = tmp_path / "zoo"
    sweep_in_process(
        f"model={','.join(MODELS)}", "latent=4", *QUIET, sweep_dir=sweep, data_root=mnist_root
    )
    jobs = job_dirs(sweep)
    assert sorted(jobs) == sorted(MODELS)

    n_params = {}
    for name in AUTOENCODERS:
        metrics = check_common(jobs[name])
        n_params[name] = metrics["n_params"]
        logged = scalars(jobs[name])
        for key in ("train/loss", "val/loss", "val/mse", "pca/val_mse"):
            assert key in logged and key in metrics, (name, key)
        for key in ("test/mse", "pca/test_mse"):
            assert 0 < metrics[key] < 1, (name, key, metrics[key])
        for extra in EXTRA.get(name, ()):
            for stage in ("train", "val", "test"):
                assert f"{stage}/{extra}" in metrics, (name, stage, extra)
            assert f"train/{extra}" in logged, (name, extra)
        if "kl" in EXTRA.get(name, ()):  # a VAE on grey targets: no likelihood, no neg_elbo
            assert "val/neg_elbo" not in logged and "test/neg_elbo" not in metrics, name
    # every autoencoder sits beside the same PCA at the same latent size
    assert len({check_common(jobs[n])["pca/test_mse"] for n in AUTOENCODERS}) == 1
    # the deep and convolutional variants really are bigger networks than the classic one
    assert n_params["deep_ae"] > n_params["ae"]
    assert n_params["conv_ae"] != n_params["conv_vae"]

    for name in CLASSIFIERS:
        metrics = check_common(jobs[name])
        assert 0 <= metrics["test/acc"] <= 1
        assert {"train/acc", "val/acc"} <= scalars(jobs[name]).keys()
        assert "pca/test_mse" not in metrics


def test_overcomplete_sparse_denoising_autoencoder(tmp_path: Path, mnist_root: Path) -> None:
    run = tmp_path / "run"
    run_in_process(
        "experiment=denoising",
        "model=sparse_ae",
        "latent=1000",
        "model.sparsity=l1",
        "model.weight=1e-4",
        *QUIET,
        run_dir=run,
        data_root=mnist_root,
    )
    config = yaml.safe_load((run / ".hydra" / "config.yaml").read_text())
    assert config["transform"]["_target_"] == "ae_lab.data.GaussianNoise"
    metrics = check_common(run)
    assert yaml.safe_load((run / "hparams.yaml").read_text())["latent_dim"] == 1000
    # 1000 code units, clamped to the 784 components PCA can have: PCA copies its noisy input,
    # so its error against the clean target is the noise itself, not zero
    assert metrics["pca/test_mse"] > 0.01
    for key in ("sparsity_penalty", "code_mean", "active_frac"):
        assert f"train/{key}" in metrics and f"val/{key}" in metrics
    assert 0 <= metrics["val/active_frac"] <= 1
