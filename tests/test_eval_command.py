"""``ae-lab-eval``: the session's tiny trained run (``trained_run``), evaluated once with every
evaluation callback (in this process) and once as a sweep over corruptions through the real
entrypoint (``python -m ae_lab.eval``, a process)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_ae_lab, run_in_process, scalars

EVAL = ("-m", "ae_lab.eval")
# the evaluation's own limits: the trainer is not taken from the trained run
TEST_LIMITS = ("trainer.limit_test_batches=2", "trainer.enable_progress_bar=false", "threads=1")


def read(run: Path, name: str) -> dict:
    return json.loads((run / name).read_text())


def test_a_checkpoint_is_evaluated_under_a_corruption_with_every_evaluation(
    trained_run, tmp_path, synthetic_root
) -> None:
    trained = trained_run.run_dir
    out = tmp_path / "eval"
    run_in_process(
        f"ckpt_path={trained}/checkpoints/last.ckpt",
        "transform=mask",
        "transform.p=0.5",
        *TEST_LIMITS,
        "callbacks.latent_map.n_points=100",
        run_dir=out,
        data_root=synthetic_root,
        config_name="eval",
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


@pytest.mark.integration
def test_a_sweep_over_corruptions_tests_the_trained_weights(
    trained_run, tmp_path, synthetic_root
) -> None:
    """The ``ae-lab-eval`` command itself (a process): the checkpoint's run overrides put on its
    command line, a sweep, its summary."""
    trained = trained_run.run_dir
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
        data_root=synthetic_root,
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
