"""The results page over seeds: every published figure as mean ± std with its n and a verdict
that takes the spread into account, on a sweep where some preset jobs ran 3 seeds and one ran 1;
learning curves as the mean over seeds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from ae_lab.reporting import formatting, verdicts
from scripts import results, results_figures, results_sweep

PRESET = "report_course"


def fake_seeded_sweep(path: Path, one_seed: str) -> dict[str, list[dict]]:
    """A finished sweep of the course preset: 3 seeds per job, ``one_seed`` with 1; per-job
    values drawn at random, 3 epochs of val/mse each."""
    from torch.utils.tensorboard import SummaryWriter

    declared = results_sweep.presets()[PRESET]
    rng = np.random.default_rng(1)
    hydra = {
        "overrides": {"task": [f"experiment={PRESET}", "seed=0,1,2"]},
        "runtime": {"choices": {"experiment": PRESET}},
        "launcher": {"n_jobs": 2},
    }
    path.mkdir(parents=True)
    (path / "multirun.yaml").write_text(
        yaml.safe_dump({"hydra": hydra, "report": declared, "threads": 1})
    )
    jobs = sorted({r["job"] for r in declared["reference"]} | {one_seed})
    logged: dict[str, list[dict]] = {}
    for job in jobs:
        for seed in range(1 if job == one_seed else 3):
            overrides = [f"report_job={job}", f"seed={seed}"]
            run = path / ",".join(overrides).replace("/", "_")
            (run / ".hydra").mkdir(parents=True)
            (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
            choices = {"model": "ae", "transform": "none", "report_job": job}
            (run / ".hydra" / "hydra.yaml").write_text(
                yaml.safe_dump({"hydra": {"runtime": {"choices": choices}}})
            )
            (run / "job.json").write_text(json.dumps({"status": "completed", "latent": 64}))
            values = {
                r["metric"]: float(r["value"]) * rng.uniform(0.9, 1.1)
                for r in declared["reference"]
            }
            values |= {f"test/mse_digit/{k}": 0.01 for k in range(10)}
            values |= {f"pca/test_mse_digit/{k}": 0.02 for k in range(10)}
            (run / "metrics.json").write_text(json.dumps(values))
            logged.setdefault(job, []).append(values)
            with SummaryWriter(run) as events:
                for epoch in range(3):
                    events.add_scalar("epoch", epoch, epoch)
                    events.add_scalar("val/mse", values["test/mse"] * (3 - epoch), epoch)
    return logged


def test_page_gives_mean_std_n_and_verdict_per_published_figure(tmp_path) -> None:
    sweep = tmp_path / "sweep"
    logged = fake_seeded_sweep(sweep, one_seed="course/classifier")
    text = results.write_page([sweep], tmp_path / "docs").read_text()
    assert verdicts.BEATEN_RULE in text
    assert "Finished seeds: 3 seeds per job; course/classifier: 1." in text
    assert "2 jobs at a time, 1 thread each" in text
    declared = results_sweep.presets()[PRESET]
    for ref in declared["reference"]:
        values = [v[ref["metric"]] for v in logged[ref["job"]]]
        mean = float(np.mean(values))
        line = next(ln for ln in text.splitlines() if ln.startswith(f"| {ref['what']} (`"))
        cells = [c.strip() for c in line.split("|")[1:-1]]
        n = len(values)
        assert cells[3] == str(n)
        assert cells[2].startswith(formatting.fmt(mean, ref["metric"]))
        assert (" ± " in cells[2]) == (n > 1)
        std = float(np.std(values, ddof=1)) if n > 1 else None
        assert cells[5] == verdicts.beaten(ref["metric"], mean, float(ref["value"]), std, n)
    # a reference with a note says it beside the figure
    noted = [r for r in declared["reference"] if r.get("note")]
    assert noted and all(r["note"] in text for r in noted)
    assert (tmp_path / "docs" / "figures" / "course_learning_curves.png").stat().st_size > 0
    assert (tmp_path / "docs" / "figures" / "course_per_digit.png").stat().st_size > 0


def test_learning_curve_is_the_mean_over_seeds_with_one_point_per_epoch() -> None:
    runs = [[(1, 1.0), (2, 0.5), (3, 0.25)], [(1, 3.0), (2, 1.5), (3, 0.75), (3, 0.7)]]
    curve = results_figures.mean_curve(runs)
    assert [e for e, _, _ in curve] == [1, 2, 3]
    assert curve[0][1:] == pytest.approx((2.0, np.std([1.0, 3.0], ddof=1)))
    assert curve[2][1] == pytest.approx(np.mean([0.25, 0.7]))


def test_curve_labels_say_what_each_job_is() -> None:
    assert results_figures.label({"model": "ae", "latent": 44, "transform": "none"}) == (
        "ae, latent 44"
    )
    assert results_figures.label({"model": "ae", "latent": 32, "transform": "mask"}) == (
        "ae, latent 32, mask"
    )


@pytest.mark.parametrize("name", ["report_course", "report_auth"])
def test_presets_sweep_every_job_over_3_seeds_longest_first(name) -> None:
    """The report jobs are the outer loop and the seeds the inner one, so Hydra hands the
    launcher a job's seeds one after another, the longest job (first in the list) first."""
    from hydra import compose, initialize_config_dir

    from ae_lab.run.train import CONFIG_DIR

    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", [f"experiment={name}"], return_hydra_config=True)
    params = dict(cfg.hydra.sweeper.params)
    assert list(params) == ["report_job", "seed"]
    assert [int(s) for s in params["seed"].split(",")] == [0, 1, 2]
