"""Seed statistics: jobs that differ only in the keys averaged over form one group whose mean,
sample std and n match numpy on the job records; numeric order, integers as integers, one number
format per column, and the "beaten" rule that takes the spread into account."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from ae_lab.core import records
from ae_lab.reporting import collect, formatting, groups, metrics, report, verdicts


def write_job(sweep: Path, overrides: list[str], values: dict | None, status: str) -> Path:
    """A job folder as a sweep leaves it: Hydra's files, and ae_lab's records."""
    job = sweep / ",".join(overrides)
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    choices = {"model": "ae", "transform": "none"}
    (job / ".hydra" / "hydra.yaml").write_text(
        yaml.safe_dump({"hydra": {"runtime": {"choices": choices}}})
    )
    latent = int(next(o for o in overrides if o.startswith("latent=")).split("=")[1])
    records.write(job, records.JobRecord(status, overrides=overrides, latent=latent, model="ae"))
    if values is not None:
        records.write_metrics(job, values)
    return job


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture
def sweep(tmp_path: Path) -> tuple[Path, dict]:
    """latent 2, 8 and 32 over seeds 0-2 (latent 32: seed 2 failed), random metrics."""
    rng = np.random.default_rng(0)
    sweep = tmp_path / "sweep"
    logged: dict[int, list[dict]] = {}
    for latent in (2, 8, 32):
        for seed in range(3):
            overrides = [f"latent={latent}", f"seed={seed}"]
            if latent == 32 and seed == 2:
                write_job(sweep, overrides, None, records.FAILED)
                continue
            values = {
                "test/mse": float(rng.uniform(0.005, 0.05)),
                "pca/test_mse": float(rng.uniform(0.01, 0.05)),
                "n_params": 202258.0 + latent,
                "time/samples_per_s": float(rng.choice([9695.0, 43010.0])),
            }
            logged.setdefault(latent, []).append(values)
            write_job(sweep, overrides, values, records.COMPLETED)
    return sweep, logged


def test_groups_report_numpys_mean_std_and_n(sweep) -> None:
    path, logged = sweep
    grouped = groups.group_rows(collect.collect(path))
    assert [g["overrides"] for g in grouped] == ["latent=2", "latent=8", "latent=32"]
    for g in grouped:
        values = np.array([v["test/mse"] for v in logged[g["latent"]]])
        stat = g["test/mse"]
        assert stat.mean == pytest.approx(values.mean())
        assert stat.std == pytest.approx(values.std(ddof=1))
        assert stat.n == len(values)
        assert g["n"] == 3
    assert grouped[2]["status"] == "2 of 3 completed" and grouped[2]["completed"] == 2
    # the ratio is averaged per job, not formed from the averages
    ratios = [v["test/mse"] / v["pca/test_mse"] for v in logged[8]]
    assert grouped[1][metrics.RATIO].mean == pytest.approx(np.mean(ratios))


def test_summary_files_carry_the_statistics_and_every_job(sweep) -> None:
    path, logged = sweep
    report.summarize(path, reference=[{"metric": "test/mse", "value": 0.001, "what": "pub"}])
    rows = read_csv(path / "summary.csv")
    assert [r["overrides"] for r in rows] == ["latent=2", "latent=8", "latent=32"]
    two = rows[0]
    values = np.array([v["test/mse"] for v in logged[2]])
    assert float(two["test/mse"]) == pytest.approx(values.mean())
    assert float(two["test/mse:std"]) == pytest.approx(values.std(ddof=1))
    assert two["n"] == "3" and two["latent"] == "2"
    assert two["n_params"] == "202260"  # an integer, not 202260.0
    assert not any(c.endswith(":n") for c in rows[0])  # every metric has all its group's values
    assert all(any(r[c] for r in rows) for c in rows[0])  # no always-empty column
    jobs = read_csv(path / "jobs.csv")
    assert len(jobs) == 9 and [j["overrides"] for j in jobs][:3] == [
        "latent=2 seed=0",
        "latent=2 seed=1",
        "latent=2 seed=2",
    ]
    md = (path / "summary.md").read_text()
    assert "sample standard deviation (ddof=1)" in md and "## Every job" in md
    assert " ± " in md and "| n |" in md
    assert "e+04" not in md and "43,010" in md  # one number format per column


def test_average_over_is_a_setting(sweep, tmp_path) -> None:
    """Averaged over seed and latent: one group of the 8 completed jobs; from the CLI too."""
    path, logged = sweep
    grouped = groups.group_rows(collect.collect(path), ["seed", "latent"])
    assert len(grouped) == 1 and grouped[0]["test/mse"].n == 8
    everything = [v["test/mse"] for vs in logged.values() for v in vs]
    assert grouped[0]["test/mse"].std == pytest.approx(np.std(everything, ddof=1))
    report.main([str(path), "--average-over", "seed", "latent"])
    assert len(read_csv(path / "summary.csv")) == 1
    # a preset's report.average_over is the default of its sweep
    (path / "multirun.yaml").write_text(yaml.safe_dump({"report": {"average_over": ["latent"]}}))
    report.main([str(path)])
    assert [r["overrides"] for r in read_csv(path / "summary.csv")] == [
        "seed=0",
        "seed=1",
        "seed=2",
    ]


def test_numeric_sort() -> None:
    names = ["latent=32", "latent=2", "latent=8", "p=0.5", "p=0.25", "latent=16 p=0.75"]
    assert sorted(names, key=groups.natural_key) == [
        "latent=2",
        "latent=8",
        "latent=16 p=0.75",
        "latent=32",
        "p=0.25",
        "p=0.5",
    ]


def test_integers_as_integers_and_one_format_per_column() -> None:
    assert formatting.fmt(202258.0, "n_params") == "202,258"
    assert formatting.fmt(44.0, "pca/n_components") == "44"
    assert formatting.fmt(2, "latent") == "2" and formatting.csv_value(202258.0) == 202258
    assert formatting.csv_value(0.25) == 0.25
    assert formatting.fmt_column([43010.4, 9695.2], "time/samples_per_s") == ["43,010", "9,695"]
    assert formatting.fmt_column([0.0123, 0.00456], "test/mse") == ["0.0123", "0.00456"]
    stat = groups.Stat.of([0.0101, 0.0099, 0.0100])
    assert formatting.fmt(stat, "test/mse") == "0.01 ± 0.0001"
    assert formatting.fmt(groups.Stat.of([0.9889]), "test/acc") == "98.89%"


@pytest.mark.parametrize(
    ("name", "ours", "std", "n", "published", "verdict"),
    [
        ("test/mse", 0.0090471, 0.0, 3, 0.009047, "same"),  # equal at the published precision
        ("test/mse", 0.0090, 0.0002, 3, 0.0095, "yes"),  # better beyond 2·std/√n
        ("test/mse", 0.0093, 0.0002, 3, 0.0095, "within noise"),  # margin 0.00023
        ("test/mse", 0.0100, 0.0002, 3, 0.0095, "no"),
        ("test/acc", 0.9895, 0.0001, 3, 0.9889, "yes"),  # higher is better
        ("test/acc", 0.9892, 0.0005, 3, 0.9889, "within noise"),
        ("test/acc", 0.9880, 0.0001, 3, 0.9889, "no"),
        ("test/mse", 0.0093, None, 1, 0.0095, "yes"),  # one seed: no spread, the value decides
        ("pca/n_components", 44.0, 0.0, 3, 44, "same"),
        ("pca/n_components", 45.0, 0.0, 3, 44, "differs"),
    ],
)
def test_the_beaten_rule(name, ours, std, n, published, verdict) -> None:
    assert verdicts.beaten(name, ours, published, std, n) == verdict


def test_groups_keep_partial_metrics_and_json_records(tmp_path) -> None:
    """A metric only some seeds logged gets its own n, shown beside it."""
    sweep = tmp_path / "sweep"
    write_job(sweep, ["latent=4", "seed=0"], {"test/mse": 0.1, "test/nll": 90.0}, "completed")
    write_job(sweep, ["latent=4", "seed=1"], {"test/mse": 0.3}, "completed")
    [g] = groups.group_rows(collect.collect(sweep))
    assert (g["test/mse"].n, g["test/nll"].n, g["test/nll"].std) == (2, 1, None)
    report.summarize(sweep)
    row = read_csv(sweep / "summary.csv")[0]
    assert row["test/nll:n"] == "1" and "test/mse:n" not in row  # as many as completed
    assert "(n=1)" in (sweep / "summary.md").read_text()
    assert json.loads((sweep / "latent=4,seed=0" / records.METRICS_FILE).read_text())


def test_a_figure_one_unit_off_the_published_last_digit_is_the_same_and_two_are_not() -> None:
    """PCA(64) reproduces the published 0.009047 as 0.009048 with no spread: the same figure."""
    assert verdicts.beaten("pca/test_mse", 0.00904802, 0.009047, 0.0, 3) == "same"
    assert verdicts.beaten("pca/test_mse", 0.009049, 0.009047, 0.0, 3) == "no"
    assert verdicts.beaten("pca/test_mse", 0.009045, 0.009047, 0.0, 3) == "yes"


def test_a_column_that_reaches_1000_is_whole_numbers_throughout() -> None:
    assert formatting.fmt_column([874.7, 26260.0], "time/samples_per_s") == ["875", "26,260"]
