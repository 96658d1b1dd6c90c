"""The reporting code split into one job per module writes what it wrote before: summary.md,
summary.csv, jobs.csv, mse_vs_latent.png and the results page with its figures, byte for byte, for
the same sweep folders of current records. And a sweep folder of an older ae_lab gets one line
that says how to regenerate it, which a re-run of its sweep does.

The code before the split is the commit ``BEFORE_SPLIT`` of this repository's history (``git
archive``), or the checkout ``$AE_LAB_REPORTING_REFERENCE`` names; each writes the outputs in a
process of its own, through the commands a user runs. A change of an output made on purpose moves
``BEFORE_SPLIT`` to the commit that made it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from ae_lab.core import records
from ae_lab.reporting import collect, metrics, report
from scripts import results, results_figures, results_sweep
from tests.conftest import FAST, REPO, sweep_in_process

# moved to the commit that added the novelty study's sections to the results page (the page of
# the same sweeps before it differed only by their two "no sweep given" sections)
BEFORE_SPLIT = "4668db4ba680c41312b379716a289b8ed4d539d9"
SUMMARY_FILES = ("summary.md", "summary.csv", "jobs.csv", "mse_vs_latent.png")
RUN_FIGURES = ("latent_map.png", "reconstructions.png", "prior_samples.png")


@pytest.fixture(scope="module")
def code_before(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkout of the code before the split (ae_lab/, scripts/, conf/)."""
    given = os.environ.get("AE_LAB_REPORTING_REFERENCE")
    if given:
        return Path(given)
    root = tmp_path_factory.mktemp("before_split")
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", BEFORE_SPLIT, "ae_lab", "scripts", "conf"],
        capture_output=True,
    )
    if archive.returncode != 0:
        pytest.skip(f"the code before the split needs the git history with {BEFORE_SPLIT[:7]}")
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
    return root


def value(name: str, rng: np.random.Generator) -> float:
    """A plausible value of metric ``name``: a share, a count, a rate or an MSE."""
    metric = metrics.find(name)
    if metric is not None and metric.form == metrics.SHARE:
        return float(rng.uniform(0.9, 0.999))
    if metric is not None and metric.form == metrics.COUNT:
        return float(rng.integers(10, 300_000))
    if name == "time/samples_per_s":
        return float(rng.uniform(800, 45_000))
    return float(rng.uniform(0.001, 0.05))


def write_job(sweep: Path, overrides: list[str], status: str, job: str | None, **kw) -> Path:
    """A job folder as a sweep of this release leaves it: Hydra's files and ae_lab's records
    (``metrics``: final metrics; ``error``; ``damage``: a file whose text is replaced)."""
    name = job or "ae"
    model = "vae" if "vae" in name else "classifier" if "classifier" in name else "ae"
    latent = None if model == "classifier" else kw.get("latent", 8)
    run = sweep / ",".join(overrides).replace("/", "_")
    (run / ".hydra").mkdir(parents=True)
    choices = {"model": model, "transform": "mask" if "mask" in name else "none"}
    choices |= {"report_job": job} if job else {}
    files = {
        "overrides.yaml": overrides,
        "hydra.yaml": {"hydra": {"runtime": {"choices": choices}}},
        "config.yaml": {"latent": latent},
    }
    for file, content in files.items():
        (run / ".hydra" / file).write_text(yaml.safe_dump(content))
    final = metrics.with_ratio(kw["metrics"]) if kw.get("metrics") else None
    record = records.JobRecord(
        status, "0123456789abcdef", overrides, latent, model, choices["transform"]
    )
    record.wall_s, record.error, record.metrics = 12.5, kw.get("error"), final
    records.write(run, record)
    if final is not None:
        records.write_metrics(run, final)
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(run) as events:  # the step is the epoch, as EpochAxis logs it
            for epoch in (1, 2, 3):
                for tag in ("val/mse", "val/loss", "val/neg_elbo"):
                    events.add_scalar(tag, final.get("test/mse", 0.01) * (4 - epoch), epoch)
        (run / "figures").mkdir()
        pixels = np.add.outer(np.arange(400), np.arange(900)) % 256
        for figure in RUN_FIGURES:
            Image.fromarray(pixels.astype(np.uint8)).convert("RGB").save(run / "figures" / figure)
    for file, text in (kw.get("damage") or {}).items():
        (run / file).write_text(text)
    return run


def preset_sweep(path: Path, preset: str, seeds: int, rng: np.random.Generator) -> Path:
    """A sweep of a report preset: every job it declares over ``seeds`` seeds, all metrics; with
    several seeds, a damaged metrics.json, a failed, a running and an untrustworthy job, and a
    metric one seed lacks."""
    declared = results_sweep.presets()[preset]
    hydra = {
        "overrides": {"task": [f"experiment={preset}", "threads=1"]},
        "runtime": {"choices": {"experiment": preset}},
        "launcher": {"n_jobs": 2},
    }
    path.mkdir(parents=True)
    multirun = {"hydra": hydra, "report": declared, "threads": 1}
    (path / "multirun.yaml").write_text(yaml.safe_dump(multirun))
    jobs = {r["job"] for r in declared["reference"]}
    jobs |= {j for spec in declared["figures"] for j in results_figures.jobs_of(spec)}
    names = [*metrics.shown_in(metrics.RESULTS), *metrics.shown_in(metrics.SUMMARY)]
    names += [r["metric"] for r in declared["reference"]]
    names += [f"{p}test_mse_digit/{k}" for p in ("", "pca/") for k in range(10)]
    for i, job in enumerate(sorted(jobs)):
        for seed in range(seeds):
            values = {k: value(k, rng) for k in dict.fromkeys(names)}
            kw: dict = {"metrics": values, "latent": (2, 4, 8, 16, 32, 64)[i % 6]}
            status = records.COMPLETED
            if seeds > 1 and (i, seed) == (0, 1):
                kw["damage"] = {records.METRICS_FILE: "{"}  # repaired from job.json
            elif seeds > 1 and (i, seed) == (1, 2):
                status, kw = records.FAILED, {"error": "ValueError: a | in the message"}
            elif seeds > 1 and (i, seed) == (2, 2):
                status, kw = records.RUNNING, {}
            elif seeds > 1 and (i, seed) == (2, 1):
                values.pop("probe/acc")
            elif seeds > 1 and (i, seed) == (3, 0):
                kw["damage"] = {records.JOB_FILE: "{"}
            write_job(path, [f"report_job={job}", f"seed={seed}"], status, job, **kw)
    return path


def latent_sweep(path: Path, rng: np.random.Generator) -> Path:
    """A sweep without a preset: latents over two seeds, a pruned and a failed job, a reference."""
    path.mkdir(parents=True)
    declared = {"reference": [{"metric": "test/mse", "value": 0.0095, "what": "published"}]}
    (path / "multirun.yaml").write_text(yaml.safe_dump({"report": declared}))
    names = ["test/mse", "pca/test_mse", "n_params", "time/samples_per_s", "time/wall_s"]
    for latent in (2, 8, 32):
        for seed in (0, 1):
            values = {k: value(k, rng) for k in names}
            overrides = [f"latent={latent}", f"seed={seed}"]
            write_job(path, overrides, records.COMPLETED, None, metrics=values, latent=latent)
    write_job(path, ["latent=64", "seed=0"], records.PRUNED, None, error="pruned at epoch 2")
    write_job(path, ["latent=128", "seed=0"], records.FAILED, None, error="Diverged: NaN")
    return path


def outputs(code: Path, sweeps: list[Path], page: Path) -> dict[str, bytes]:
    """What ``code`` writes for ``sweeps`` through the commands a user runs (``python -m
    ae_lab.reporting.report``, ``python -m scripts.results``), taken out of the folders."""
    env = {**os.environ, "PYTHONPATH": str(code), "PYTHONDONTWRITEBYTECODE": "1"}
    where = "import ae_lab, scripts; print(ae_lab.__file__); print(scripts.__file__)"
    found = subprocess.run([sys.executable, "-c", where], cwd=code, env=env, capture_output=True)
    assert all(Path(p).is_relative_to(code) for p in found.stdout.decode().split()), found
    for command in (
        ["-m", "ae_lab.reporting.report", *map(str, sweeps)],
        ["-m", "scripts.results", *map(str, sweeps), "--out", str(page)],
    ):
        done = subprocess.run([sys.executable, *command], cwd=code, env=env, capture_output=True)
        assert done.returncode == 0, done.stderr.decode()[-3000:]
    out = {}
    for sweep in sweeps:
        for name in SUMMARY_FILES:
            if (sweep / name).exists():
                out[f"{sweep.name}/{name}"] = (sweep / name).read_bytes()
                (sweep / name).unlink()
    for file in sorted(page.rglob("*")):
        if file.is_file():
            out[f"page/{file.relative_to(page)}"] = file.read_bytes()
    shutil.rmtree(page)
    return out


def test_the_split_writes_every_output_as_before(tmp_path, code_before) -> None:
    rng = np.random.default_rng(7)
    sweeps = [
        preset_sweep(tmp_path / "course", "report_course", 3, rng),
        preset_sweep(tmp_path / "auth", "report_auth", 1, rng),
        latent_sweep(tmp_path / "latents", rng),
    ]
    before = outputs(code_before, sweeps, tmp_path / "docs")
    after = outputs(REPO, sweeps, tmp_path / "docs")
    assert sorted(after) == sorted(before)
    assert [name for name in before if after[name] != before[name]] == []
    # every kind of output is among them, and the fixture reaches what they show
    assert {f"latents/{n}" for n in SUMMARY_FILES} <= set(before)
    given = ("report_course", "report_auth")
    declared = sum(len(p["figures"]) for k, p in results_sweep.presets().items() if k in given)
    assert len([n for n in before if n.startswith("page/figures/")]) == declared
    md, page = before["course/summary.md"].decode(), before["page/results.md"].decode()
    assert "| failed |" in md and "(n=1)" in md and "a | in the message" in md
    assert "| yes |" in page and "| no |" in page
    # the likelihood benchmark's and the novelty study's two
    assert page.count("*Missing: no sweep was given for this report.*") == 3
    assert "1 pruned" in before["latents/summary.md"].decode()


def older_sweep(path: Path, layout: str) -> Path:
    """A sweep folder of an older ae_lab: a job with metrics but no job.json, or reference
    figures named under ``hydra.callbacks``."""
    run = write_job(path, ["latent=2"], records.COMPLETED, None, metrics={"test/mse": 0.02})
    hydra: dict = {"overrides": {"task": ["latent=2", "data.exclude_classes=[3]"]}}
    if layout == "unrecorded job":
        (run / records.JOB_FILE).unlink()
    else:
        hydra["callbacks"] = {"summary": {"reference": [{"metric": "test/mse", "value": 0.1}]}}
    (path / "multirun.yaml").write_text(yaml.safe_dump({"hydra": hydra}))
    return path


@pytest.mark.parametrize("layout", ["unrecorded job", "reference in callbacks"])
def test_a_sweep_of_an_older_ae_lab_gets_one_line_and_nothing_written(
    tmp_path, capsys, layout
) -> None:
    sweep = older_sweep(tmp_path / "sweep", layout)
    for command in (report.main, results.main):
        with pytest.raises(SystemExit) as ended:
            command([str(sweep), *(["--out", str(tmp_path / "docs")] * (command is results.main))])
        assert ended.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"ae_lab: {sweep} was written by an older")
        rerun = f"python -m ae_lab -m latent=2 'data.exclude_classes=[3]' hydra.sweep.dir={sweep}"
        assert rerun in err
    assert not any((sweep / name).exists() for name in SUMMARY_FILES)
    assert not (tmp_path / "docs").exists()


def test_a_job_without_a_record_is_incomplete_not_completed(tmp_path) -> None:
    """Metrics without job.json no longer count as a completed job (a sweep callback summarising
    a sweep that re-runs such jobs shows them as not yet run)."""
    sweep = older_sweep(tmp_path / "sweep", "unrecorded job")
    [row] = collect.collect(sweep)
    assert row["status"] == "incomplete" and row["test/mse"] == 0.02


def test_running_the_sweep_again_regenerates_an_older_sweep_folder(
    tmp_path, synthetic_root, capsys
) -> None:
    """The command the line gives, run: the job whose record is current is skipped, the one an
    older ae_lab left is set aside and run again, and the folder then reads."""
    sweep = tmp_path / "sweep"
    ran = sweep_in_process(
        "latent=2,4", *FAST, "data.val_size=100", sweep_dir=sweep, data_root=synthetic_root
    )
    jobs = {r["overrides"].split()[0]: sweep / r["job"] for r in collect.collect(ran.sweep_dir)}
    (jobs["latent=2"] / records.JOB_FILE).unlink()  # as an ae_lab before job records left it
    kept = (jobs["latent=4"] / records.METRICS_FILE).stat().st_mtime_ns
    with pytest.raises(SystemExit):
        report.main([str(sweep)])
    line = capsys.readouterr().err
    command = shlex.split(line.split("`")[1])
    assert command[:4] == ["python", "-m", "ae_lab", "-m"]
    sweep_in_process(*command[4:], data_root=synthetic_root)
    assert (jobs["latent=4"] / records.METRICS_FILE).stat().st_mtime_ns == kept
    assert (sweep / f"{jobs['latent=2'].name}.superseded-1" / records.METRICS_FILE).exists()
    report.main([str(sweep)])
    rows = collect.collect(sweep)
    assert [r["status"] for r in rows] == ["completed", "completed"]
