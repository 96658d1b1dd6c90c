"""The entrypoint's runs and sweeps on the real MNIST with tiny limits, in this process
(``run_in_process``, ``sweep_in_process``: the command's own steps without a process's start)."""

import json
from pathlib import Path

import pytest

from tests.conftest import TINY, run_in_process, scalars, sweep_in_process

pytestmark = pytest.mark.integration

CORE_TAGS = {"train/loss", "val/loss", "val/mse", "test/mse", "pca/val_mse", "pca/test_mse"}


def only(paths: list[Path]) -> Path:
    assert len(paths) == 1, paths
    return paths[0]


def test_single_run_reproduces_pca_and_writes_everything(tmp_path, mnist_root):
    overrides = [*TINY, "trainer.limit_test_batches=null"]  # the full test set, for the PCA figure
    run = run_in_process(
        "latent=64", "accelerator=cpu", *overrides, run_dir=tmp_path / "run", data_root=mnist_root
    )
    run_dir = run.run_dir

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics == pytest.approx(run.metrics)  # what train() returns is what it wrote
    assert metrics["pca/test_mse"] == pytest.approx(0.009047, rel=0.02)
    assert 0 < metrics["test/mse"] < 1
    assert metrics["n_params"] > 0

    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    tags = scalars(run_dir)
    assert set(tags) >= CORE_TAGS
    for tag in ("pca/test_mse", "test/mse"):
        assert tags[tag][-1] == pytest.approx(metrics[tag], rel=1e-6)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    images = set()
    for events in run_dir.glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events))
        acc.Reload()
        images |= set(acc.Tags()["images"])
    assert "val/reconstructions" in images


def test_one_job_multirun_is_named_after_its_overrides(tmp_path, mnist_root):
    sweep = sweep_in_process(
        "model=conv_vae", "latent=8", *TINY, sweep_dir=tmp_path / "sweep", data_root=mnist_root
    ).sweep_dir
    job = only([p for p in sweep.iterdir() if p.is_dir()])
    # TINY's debug preset is left out of the name, and a hash of the overrides stands for it
    assert job.name.startswith("model=conv_vae,latent=8@")
    tags = scalars(job)
    assert CORE_TAGS | {"train/recon", "train/kl", "val/recon", "val/kl"} <= set(tags)
    assert (job / "checkpoints" / "last.ckpt").is_file()


def test_latent_sweep_runs_one_job_per_value(tmp_path, mnist_root):
    sweep = sweep_in_process(
        "latent=2,4", *TINY, sweep_dir=tmp_path / "sweep", data_root=mnist_root
    ).sweep_dir
    dirs = {p.name.split("@")[0]: p for p in sweep.iterdir() if p.is_dir()}
    assert set(dirs) == {"latent=2", "latent=4"}  # debug=tiny is left out of the names
    jobs = {name: json.loads((p / "metrics.json").read_text()) for name, p in dirs.items()}
    two, four = jobs["latent=2"], jobs["latent=4"]
    assert four["pca/test_mse"] < two["pca/test_mse"]  # more components reconstruct better
    for job in dirs.values():
        assert set(scalars(job)) >= CORE_TAGS
