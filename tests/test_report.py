"""Sweep summaries: rows per job with overrides and status, the plot, the Hydra callback, and one
real 2-job sweep with a failing job through the entrypoint."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import RunMode
from omegaconf import OmegaConf

from ae_lab.core import attempts, lifecycle, records
from ae_lab.reporting import collect, report
from ae_lab.sweeps.sweep import SweepSummary
from tests.conftest import TINY, compose_cfg, sweep_in_process


def fake_job(sweep: Path, name: str, overrides: list[str], metrics: dict | None, **status) -> Path:
    job = sweep / name
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    choices = {"model": status.pop("model", "ae"), "transform": "none"}
    hydra = {"hydra": {"runtime": {"choices": choices}}}
    (job / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra))
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"latent": status.pop("latent")}))
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))
    if status:
        (job / "job.json").write_text(json.dumps(status))
    return job


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def test_summary_has_a_row_per_job_with_status_ratio_and_plot(tmp_path) -> None:
    sweep = tmp_path / "sweep"
    for latent, mse, pca in ((2, 0.04, 0.05), (8, 0.02, 0.03)):
        metrics = {"test/mse": mse, "pca/test_mse": pca, "time/wall_s": 3.0}
        job = fake_job(sweep, f"latent={latent}", [f"latent={latent}"], metrics, latent=latent)
        records.write(job, records.JobRecord(records.COMPLETED, latent=latent))
    fake_job(sweep, "latent=16", ["latent=16"], None, latent=16, status="failed", error="boom")
    fake_job(sweep, "latent=32", ["latent=32"], None, latent=32)  # still running, or killed
    ref = [{"metric": "test/mse", "value": 0.01, "what": "published"}]
    report.summarize(sweep, reference=ref)
    rows = read_csv(sweep / "summary.csv")
    assert [r["overrides"] for r in rows] == ["latent=2", "latent=8", "latent=16", "latent=32"]
    by = {r["overrides"]: r for r in rows}
    assert by["latent=16"]["status"] == "failed" and by["latent=16"]["error"] == "boom"
    assert by["latent=32"]["status"] == "incomplete"
    assert by["latent=2"]["status"] == "completed"
    assert float(by["latent=2"]["test/mse_ratio"]) == 0.04 / 0.05
    assert float(by["latent=8"]["pca/test_mse"]) == 0.03
    md = (sweep / "summary.md").read_text()
    assert "| latent=16 | failed |" in md
    assert "boom" in md and "published" in md and "1.00%" not in md
    assert (sweep / "mse_vs_latent.png").stat().st_size > 5000


REFERENCE = [{"metric": "test/mse", "value": 0.5, "what": "published"}]


def test_report_cli_rebuilds_a_summary_and_reads_the_reference(tmp_path, capsys) -> None:
    sweep = tmp_path / "sweep"
    fake_job(sweep, "a", ["model=ae"], {"test/mse": 0.01}, latent=4, status="completed")
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"report": {"reference": REFERENCE}}))
    report.main([str(sweep)])
    out = capsys.readouterr().out
    assert "model=ae" in out and "Next to the reference figures" in out and "published" in out
    assert len(read_csv(sweep / "summary.csv")) == 1


def test_the_latent_column_is_the_models_bottleneck_as_recorded(tmp_path) -> None:
    """The classifier's record says it has no bottleneck, whatever the config's latent was and
    whether or not it got as far as a metric; a job without a record (stopped before it began)
    shows the config's."""
    sweep = tmp_path / "sweep"
    fake_job(sweep, "cnn", ["model=classifier"], None, latent=32, status="failed", error="x")
    fake_job(sweep, "ae", ["model=ae"], {"test/mse": 0.01}, latent=8, status="completed")
    attempts.record_latent(sweep / "ae", 8)
    fake_job(sweep, "old", ["model=ae"], {"test/mse": 0.02}, latent=4)
    rows = {r["job"]: r for r in collect.collect(sweep)}
    assert (rows["cnn"]["latent"], rows["ae"]["latent"], rows["old"]["latent"]) == (None, 8, 4)


def hydra_job_config(out: Path, sweep: Path, overrides: list[str]):
    return OmegaConf.create(
        {
            "latent": 8,
            "hydra": {
                "mode": RunMode.MULTIRUN,
                "sweep": {"dir": str(sweep)},
                "output_subdir": ".hydra",
                "overrides": {"task": overrides},
                "runtime": {"output_dir": str(out), "choices": {"model": "vae"}},
            },
        }
    )


def test_sweep_callback_records_a_failed_job_as_failed(tmp_path) -> None:
    sweep = tmp_path / "sweep"
    job = fake_job(sweep, "model=vae", ["model=vae"], None, latent=8)
    ret = JobReturn(overrides=["model=vae"], status=JobStatus.FAILED)
    ret._return_value = ValueError("Invalid learning rate: -1")
    cb = SweepSummary()
    config = hydra_job_config(job, sweep, ["model=vae"])
    # the job's own life records its failure (ae_lab.core.lifecycle); the callback summarises
    composed = compose_cfg("model=vae", "latent=8", "hydra.mode=MULTIRUN", run_dir=job)
    with pytest.raises(ValueError):
        lifecycle.run(composed, lambda life: (_ for _ in ()).throw(ret._return_value))
    cb.on_job_end(config, ret)
    status = json.loads((job / "job.json").read_text())
    assert "Next to the reference figures" not in (sweep / "summary.md").read_text()
    assert status["status"] == "failed" and "Invalid learning rate" in status["error"]
    assert status["latent"] == 8 and status["model"] == "vae"
    rows = read_csv(sweep / "summary.csv")
    assert [(r["overrides"], r["status"]) for r in rows] == [("model=vae latent=8", "failed")]


def test_a_running_sweep_redraws_its_figure_at_most_every_few_seconds_and_always_at_its_end(
    tmp_path, monkeypatch
) -> None:
    """The tables after every job; the figure after the first job, then once REDRAW_EVERY_S
    have passed, after every job once one has failed, and at the sweep's end."""
    from ae_lab.reporting import plots
    from ae_lab.sweeps import sweep as sweep_module

    drawn = []
    monkeypatch.setattr(plots, "plot_mse_vs_latent", lambda rows, *a: drawn.append(len(rows)))
    clock = [100.0]
    monkeypatch.setattr(sweep_module.time, "monotonic", lambda: clock[0])
    sweep = tmp_path / "sweep"
    cb = SweepSummary()
    ended = JobReturn(status=JobStatus.COMPLETED)

    def job_ends(latent: int, status: str = records.COMPLETED, after: float = 1.0) -> None:
        clock[0] += after
        job = fake_job(sweep, f"latent={latent}", [f"latent={latent}"], None, latent=latent)
        records.write(job, records.JobRecord(status, latent=latent))
        cb.on_job_end(hydra_job_config(job, sweep, [f"latent={latent}"]), ended)
        assert len(read_csv(sweep / "summary.csv")) == latent  # the tables: every time

    job_ends(1)
    job_ends(2)
    job_ends(3)
    assert drawn == [1]  # the first job's end only
    job_ends(4, after=sweep_module.REDRAW_EVERY_S)
    assert drawn == [1, 4]
    job_ends(5, status=records.FAILED)
    job_ends(6)
    assert drawn == [1, 4, 5, 6]  # a failed sweep gets no on_multirun_end: every job draws
    cb.on_multirun_end(hydra_job_config(sweep / "latent=6", sweep, ["latent=6"]))
    assert drawn == [1, 4, 5, 6, 6]


def test_experiment_configs_compose() -> None:
    from hydra import compose, initialize_config_dir

    from ae_lab.run.train import CONFIG_DIR

    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        for name, params in (
            ("latent_sweep", {"latent"}),
            ("masking_sweep", {"transform.p"}),
            ("report_course", {"report_job"}),
            ("report_auth", {"report_job"}),
        ):
            cfg = compose("config", [f"experiment={name}"], return_hydra_config=True)
            assert cfg.hydra.mode == RunMode.MULTIRUN
            assert params <= set(cfg.hydra.sweeper.params)
        # each report job sets its own model, bottleneck and epochs; the command line still wins
        for job, model, latent, epochs in (
            ("course/dense_ae_32", "Reconstruction", 32, 10),
            ("course/deep_ae_64", "Reconstruction", 64, 20),
            ("auth/vae", "Variational", 32, 50),
        ):
            overrides = ["experiment=report_course", f"report_job={job}"]
            cfg = compose("config", overrides, return_hydra_config=True)
            assert cfg.model.objective._target_.endswith(model)
            assert (cfg.latent, cfg.trainer.max_epochs) == (latent, epochs)
            assert "downstream" in cfg.callbacks and "nll" in cfg.callbacks
            cfg = compose("config", [*overrides, "trainer.max_epochs=1"])
            assert cfg.trainer.max_epochs == 1


@pytest.mark.integration
def test_two_job_sweep_with_a_failing_job(tmp_path, mnist_root) -> None:
    """Through the entrypoint: a learning rate of -1 makes the second job fail; the sweep exits
    non-zero, yet its summary holds both jobs, the failed one marked failed."""
    sweep = tmp_path / "sweep"
    tiny = [o for o in TINY if "progress_bar" not in o]  # the progress bar callback needs it on
    ended = sweep_in_process(
        "optimizer.lr=0.001,-1",
        "latent=2",
        *tiny,
        sweep_dir=sweep,
        data_root=mnist_root,
        check=False,
    )
    assert ended.code != 0 and "learning rate" in str(ended.error)
    rows = {r["overrides"]: r for r in read_csv(sweep / "summary.csv")}
    common = " latent=2 " + " ".join(tiny)  # hydra.* overrides are not the task's
    assert set(rows) == {"optimizer.lr=0.001" + common, "optimizer.lr=-1" + common}
    ok, bad = rows["optimizer.lr=0.001" + common], rows["optimizer.lr=-1" + common]
    assert ok["status"] == "completed" and bad["status"] == "failed"
    assert "learning rate" in bad["error"]
    assert float(ok["test/mse"]) > 0 and float(ok["pca/test_mse"]) > 0
    assert ok["latent"] == "2"
    # the per-run evaluation of the completed job
    job = sweep / ok["job"]
    metrics = json.loads((job / "metrics.json").read_text())
    assert {f"test/mse_digit/{k}" for k in range(10)} <= set(metrics)
    assert {f"pca/test_mse_digit/{k}" for k in range(10)} <= set(metrics)
    assert metrics["time/epoch_s"] > 0 and metrics["time/samples_per_s"] > 0
    assert (job / "figures" / "interpolations.png").exists()
    assert (job / "figures" / "latent_map.png").exists()
    md = (sweep / "summary.md").read_text()
    assert "| optimizer.lr=-1 | failed |" in md  # the table shows what differs between jobs
    assert (sweep / "mse_vs_latent.png").exists()
    # rebuilt from the files alone
    (sweep / "summary.csv").unlink()
    report.main([str(sweep)])
    assert len(read_csv(sweep / "summary.csv")) == 2
