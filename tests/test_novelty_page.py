"""The novelty study on the results page: sweep folders of fabricated records (experiment=novelty:
10 digits left out x ae, conv_ae, vae over two seeds; experiment=novelty_bakeoff: digit 1, latent
2) render the per-digit AUROC table, its mean over the digits, the published range with its
protocol, and a job that did not finish as missing; without their sweeps, both are listed missing.
"""

from __future__ import annotations

import re
import statistics
from pathlib import Path

import numpy as np
import pytest
import yaml

from ae_lab.core import records
from scripts import results, results_sweep

MODELS = ("ae", "conv_ae", "vae")
SEEDS = (0, 1)


def write_run(sweep: Path, model: str, digit: int, seed: int, latent: int, values: dict) -> Path:
    """A job folder as a sweep of experiment=novelty leaves it (Hydra's files, ae_lab's records);
    ``values``: its final metrics, or None for a job that is still running."""
    overrides = [f"model={model}", f"data.exclude_classes=[{digit}]", f"seed={seed}"]
    run = sweep / ",".join(overrides).replace("/", "_")
    (run / ".hydra").mkdir(parents=True)
    files = {
        "overrides.yaml": overrides,
        "hydra.yaml": {"hydra": {"runtime": {"choices": {"model": model, "transform": "none"}}}},
        "config.yaml": {"latent": latent},
    }
    for name, content in files.items():
        (run / ".hydra" / name).write_text(yaml.safe_dump(content))
    status = records.COMPLETED if values else records.RUNNING
    record = records.JobRecord(status, "0123456789abcdef", overrides, latent, model, "none")
    record.wall_s, record.metrics = 10.0, values or None
    records.write(run, record)
    if values:
        records.write_metrics(run, values)
    return run


def write_sweep(path: Path, preset: str, epochs: int) -> dict:
    """The sweep folder's ``multirun.yaml``, with the preset's own ``report`` declaration."""
    path.mkdir(parents=True)
    hydra = {
        "overrides": {"task": [f"experiment={preset}", "threads=1"]},
        "runtime": {"choices": {"experiment": preset}},
        "launcher": {"n_jobs": 2},
    }
    declared = results_sweep.presets()[preset]
    cfg = {"hydra": hydra, "report": declared, "threads": 1, "trainer": {"max_epochs": epochs}}
    (path / "multirun.yaml").write_text(yaml.safe_dump(cfg))
    return declared


@pytest.fixture
def novelty(tmp_path: Path) -> tuple[Path, dict]:
    """experiment=novelty over two seeds, random AUROCs; PCA's the same for every model of a
    seed; vae with digit 7 left out is still running."""
    rng = np.random.default_rng(3)
    sweep = tmp_path / "novelty"
    write_sweep(sweep, "novelty", epochs=2)
    values: dict = {}
    for digit in range(10):
        pca = {seed: float(rng.uniform(0.5, 0.9)) for seed in SEEDS}
        for model in MODELS:
            for seed in SEEDS:
                running = (model, digit) == ("vae", 7)
                auroc = float(rng.uniform(0.3, 0.99))
                metrics = {"novelty/auroc": auroc, "pca/novelty_auroc": pca[seed]}
                write_run(sweep, model, digit, seed, 16, None if running else metrics)
                if not running:
                    values.setdefault((model, digit), []).append(auroc)
        values[("PCA", digit)] = list(pca.values())
    return sweep, values


def cell(values: list[float]) -> str:
    return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f} (n={len(values)})"


def table_rows(page: str, title: str) -> dict[str, list[str]]:
    """The rows of the first table after ``## title``, by their first cell."""
    part = page.split(f"## {title}")[1].split("\n## ")[0]
    rows = [ln for ln in part.splitlines() if ln.startswith("| ")]
    return {
        r.split(" | ")[0][2:]: [c.strip() for c in r.strip("| ").split(" | ")[1:]] for r in rows
    }


def test_the_page_shows_each_digit_and_model_from_the_records(novelty, tmp_path) -> None:
    sweep, values = novelty
    page = results.write_page([sweep], tmp_path / "docs").read_text()
    title = results_sweep.presets()["novelty"]["title"]
    rows = table_rows(page, title)
    assert rows["digit held out"] == ["`ae`", "`conv_ae`", "`vae`", "`PCA`"]
    for digit in range(10):
        expected = [
            cell(values[(c, digit)]) if (c, digit) in values else "missing"
            for c in (*MODELS, "PCA")
        ]
        assert rows[str(digit)] == expected
    # the mean over digits: of each model's per-digit means, ± their std over the digits
    mean_row = rows["mean over digits"]
    for column, shown in zip((*MODELS, "PCA"), mean_row, strict=True):
        means = [statistics.fmean(values[(column, d)]) for d in range(10) if (column, d) in values]
        of = "" if len(means) == 10 else " of 10"
        expected = f"{statistics.fmean(means):.3f} ± {statistics.stdev(means):.3f}"
        assert shown == f"{expected} ({len(means)}{of} digits)"
    assert mean_row[2].endswith("(9 of 10 digits)")
    # how it ran and how long it took, as the reports' sections say it
    part = page.split(f"## {title}")[1].split("\n## ")[0]
    took = r"2 jobs at a time, 1 thread each, \d+\.\d min from the first job's start to the last"
    assert re.search(took, part)
    # the protocol, as the sweep says: epochs and seeds
    assert "2 epochs per job (`trainer.max_epochs`)" in page
    assert "latent 16; 2 seeds (0, 1)" in page
    # the unfinished job is named under Missing; the bakeoff point without a sweep, too
    assert f"- {title}: vae, digit 7: job not finished" in page
    bakeoff = results_sweep.presets()["novelty_bakeoff"]["title"]
    assert f"- {bakeoff}: no sweep given" in page


def test_the_bakeoff_point_stands_beside_its_published_range(tmp_path) -> None:
    rng = np.random.default_rng(5)
    sweep = tmp_path / "novelty_bakeoff"
    declared = write_sweep(sweep, "novelty_bakeoff", epochs=2)
    aurocs, probes = {}, {}
    for model in MODELS:
        for seed in (0, 1, 2):
            auroc, probe = float(rng.uniform(0.6, 0.99)), float(rng.uniform(0.5, 0.9))
            metrics = {"novelty/auroc": auroc, "pca/novelty_auroc": 0.7, "probe/acc_55": probe}
            write_run(sweep, model, 1, seed, 2, metrics)
            aurocs.setdefault(model, []).append(auroc)
            probes.setdefault(model, []).append(probe)
    page = results.write_page([sweep], tmp_path / "docs").read_text()
    published = declared["novelty"]["published"]
    low, high = published["low"], published["high"]
    assert (low, high) == (0.78, 0.91)
    part = page.split(f"## {declared['title']}")[1].split("\n## ")[0]
    assert "digit 1 held out" in declared["title"] and "latent 2" in declared["title"]
    assert "latent 2; 3 seeds (0, 1, 2)" in part
    rows = {
        r.split(" | ")[0][2:]: r.strip("| ").split(" | ")
        for r in part.splitlines()
        if r.startswith("| `")
    }
    for model in MODELS:
        mean = statistics.fmean(aurocs[model])
        verdict = "yes" if low <= mean <= high else "below" if mean < low else "above"
        acc = statistics.fmean(probes[model])
        assert rows[f"`{model}`"][1:5] == [
            "digit 1 held out of training, latent 2",
            cell(aurocs[model]),
            "0.78-0.91",
            verdict,
        ]
        assert rows[f"`{model}`"][5].startswith(f"{100 * acc:.2f}%")
        assert rows[f"`{model}`"][6] == "not stated"
    assert published["source"] in part and "is not stated at a source checked here" in part
    # one row of digits, no mean over digits
    assert "| mean over digits |" not in part and "The mean over digits" not in part
    assert "- Novelty detection, one class left out of training: no sweep given" in page
