"""``ae-lab-eval`` (``python -m ae_lab.eval``) through the real entrypoint: one tiny trained run,
evaluated once with every evaluation callback and once as a sweep over corruptions."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import TINY, run_ae_lab, scalars

pytestmark = pytest.mark.integration
EVAL = ("-m", "ae_lab.eval")
# the evaluation's own limits: the trainer is not taken from the trained run
TEST_LIMITS = ("trainer.limit_test_batches=2", "trainer.enable_progress_bar=false", "threads=1")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mnist_root) -> Path:
    """A tiny run (latent 4, no evaluation callbacks or logger), tested as training ends."""
    run = tmp_path_factory.mktemp("trained") / "run"
    run_ae_lab(
        "latent=4",
        "callbacks=none",
        "logger=none",
        "threads=1",
        *TINY,
        f"hydra.run.dir={run}",
        cwd=run.parent,
        data_root=mnist_root,
    )
    return run


def read(run: Path, name: str) -> dict:
    return json.loads((run / name).read_text())


def test_a_checkpoint_is_evaluated_under_a_corruption_with_every_evaluation(
    trained, tmp_path, mnist_root
) -> None:
    out = tmp_path / "eval"
    run_ae_lab(
        f"ckpt_path={trained}/checkpoints/last.ckpt",
        "transform=mask",
        "transform.p=0.5",
        *TEST_LIMITS,
        "callbacks.latent_map.n_points=100",
        f"hydra.run.dir={out}",
        cwd=tmp_path,
        data_root=mnist_root,
        entry=EVAL,
    )
    config = yaml.safe_load((out / ".hydra" / "config.yaml").read_text())
    assert config["latent"] == 4  # the trained run's, not the default
    assert config["transform"]["p"] == 0.5
    job = read(out, "job.json")
    assert (job["status"], job["model"], job["transform"], job["latent"]) == (
        "completed",
        "ae",
        "mask",
        4,
    )
    metrics = read(out, "metrics.json")
    for name in ("test/mse", "pca/test_mse", "test/mse_ratio", "test/mse_digit/0", "n_params"):
        assert name in metrics
    assert metrics["pca/n_components"] == 4  # PCA at the model's size
    # the corruption was applied: masked inputs reconstruct worse than the clean ones did
    assert metrics["test/mse"] != pytest.approx(read(trained, "metrics.json")["test/mse"])
    logged = scalars(out)  # TensorBoard, the eval's own logger (the trained run had none)
    assert {"test/mse", "pca/test_mse"} <= set(logged)
    assert (out / "figures" / "latent_map.png").is_file()
    assert not (out / "checkpoints").exists()  # testing writes no checkpoint


def test_a_sweep_over_corruptions_tests_the_trained_weights(trained, tmp_path, mnist_root) -> None:
    sweep = tmp_path / "sweep"
    run_ae_lab(
        "-m",
        f"ckpt_path={trained}/checkpoints/last.ckpt",
        "transform=none,gaussian",
        *TEST_LIMITS,
        "callbacks=none",
        "logger=none",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        data_root=mnist_root,
        entry=EVAL,
    )
    with open(sweep / "summary.csv") as f:
        rows = {row["transform"]: row for row in csv.DictReader(f)}
    assert set(rows) == {"none", "gaussian"}
    jobs = {
        read(d, "job.json")["transform"]: d for d in sweep.iterdir() if (d / "job.json").exists()
    }
    # without a corruption the evaluation repeats the trained run's own test, number for number
    clean, trained_metrics = read(jobs["none"], "metrics.json"), read(trained, "metrics.json")
    assert clean["test/mse"] == pytest.approx(trained_metrics["test/mse"], rel=1e-6)
    assert read(jobs["gaussian"], "metrics.json")["test/mse"] != pytest.approx(clean["test/mse"])
