"""The two report presets, run end to end as a user would (tiny limits, synthetic MNIST), and the
results page generated from their sweeps. The sweeps run in this process (``sweep_in_process``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ae_lab.core import records
from ae_lab.reporting import collect
from scripts import results, results_sweep
from tests.conftest import TINY, sweep_in_process

PRESETS = ("report_course", "report_auth")
# synthetic MNIST has 600 training images: a smaller validation split, a 1-epoch classifier
SMALL = (
    "data.val_size=100",
    "callbacks.latent_map.n_points=50",
    "callbacks.latent_map.max_iter=250",
)


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory: pytest.TempPathFactory, synthetic_root: Path) -> dict[str, Path]:
    """Both presets, each one multirun, as ``python -m ae_lab experiment=<preset>``."""
    out = {}
    for preset in PRESETS:
        cwd = tmp_path_factory.mktemp(preset)
        # one seed of each job (the presets sweep 3; tests/test_results_seeds.py covers seeds)
        extra = [
            "seed=0",
            *(["callbacks.downstream.epochs=1"] if preset == "report_course" else []),
            # K=50 importance samples, not 1000: the table needs test/nll, not its precision
            # (++: auth/conv_vae has no NLL, and a node without _target_ builds nothing)
            *(["++callbacks.nll.n_samples=50"] if preset == "report_auth" else []),
        ]
        sweep_in_process(
            f"experiment={preset}",
            *TINY,
            *SMALL,
            *extra,
            sweep_dir=cwd / "sweep",
            data_root=synthetic_root,
        )
        out[preset] = cwd / "sweep"
    return out


def test_course_preset_runs_every_job_and_writes_its_table(sweeps) -> None:
    sweep = sweeps["report_course"]
    rows = collect.collect(sweep)
    assert {r["status"] for r in rows} == {"completed"}
    assert sorted(r["report_job"] for r in rows) == [
        "course/classifier",
        "course/deep_ae_64",
        "course/dense_ae_32",
        "course/dense_ae_64",
    ]
    md = (sweep / "summary.md").read_text()
    table = md.split("## Next to the reference figures")[1]
    # every published figure has a measured value beside it (no "not measured" left)
    assert "0.009948" in table and "98.27%" in table and "98.89%" in table
    assert "not measured" not in table
    rows = [ln for ln in table.splitlines() if ln.startswith("| ") and not ln.startswith("| what")]
    assert len(rows) == 7
    # the classifier, built from a config with latent: 32, has no bottleneck and says so
    classifier = next(sweep.glob("report_job=course_classifier*"))
    assert records.read(classifier).latent is None
    assert next(r for r in collect.collect(sweep) if r["model"] == "classifier")["latent"] is None


def test_auth_preset_runs_every_job_and_writes_its_table(sweeps) -> None:
    sweep = sweeps["report_auth"]
    rows = collect.collect(sweep)
    assert {r["status"] for r in rows} == {"completed"}
    assert len(rows) == 11 and "auth/conv_vae" in {r["report_job"] for r in rows}
    md = (sweep / "summary.md").read_text()
    table = md.split("## Next to the reference figures")[1]
    assert "not measured" not in table
    # PCA at a variance share reports how many components that took
    assert "| PCA components for 0.8 of the variance | pca/n_components | 44 |" in table


def test_results_page_from_both_sweeps(sweeps, tmp_path) -> None:
    page = results.write_page([sweeps["report_course"], sweeps["report_auth"]], tmp_path)
    text = page.read_text()
    assert "python -m ae_lab experiment=report_course" in text
    assert "python -m ae_lab experiment=report_auth" in text
    assert "0.005021" in text and "| 44 |" in text
    assert text.count("min from the first job's start to the last job's end") == 2
    figures = {p.name for p in (tmp_path / "figures").iterdir()}
    for name in (
        "course_learning_curves.png",
        "course_per_digit.png",
        "course_tsne_dense_ae_32.png",
        "course_reconstructions.png",
        "auth_learning_curves_ae.png",
        "auth_learning_curves_vae.png",
        "auth_latent_size.png",
        "auth_masking.png",
        "auth_samples_vae.png",
        "auth_samples_conv_vae.png",
    ):
        assert name in figures and f"figures/{name}" in text
    # both presets given are on the page; only those no sweep was given for are missing: the
    # likelihood benchmark and the novelty study's two
    assert text.count("*Missing: no sweep was given for this report.*") == 3
    assert "The likelihood benchmark: test NLL, nats (lower is better): no sweep given" in text
    assert "Novelty detection, one class left out of training: no sweep given" in text


def test_results_page_names_what_is_missing(sweeps, tmp_path) -> None:
    """An unfinished job leaves its figures and numbers out, and the page says so."""
    course = tmp_path / "course"
    shutil.copytree(sweeps["report_course"], course)
    shutil.rmtree(next(course.glob("report_job=course_deep_ae_64*")))
    running = next(course.glob("report_job=course_dense_ae_64*"))  # no status or metrics yet
    (running / "job.json").unlink()
    (running / "metrics.json").unlink()
    assert results_sweep.Sweep.load(course).run_dir("course/dense_ae_64") is None
    page = results.write_page([course], tmp_path / "docs").read_text()
    assert "missing (job not finished)" in page  # deeper AE's published figures
    assert "course/deep_ae_64 has no reconstructions.png" in page
    assert "The university report: no sweep given" in page
    assert not (tmp_path / "docs" / "figures" / "course_reconstructions.png").exists()
    assert (tmp_path / "docs" / "figures" / "course_tsne_dense_ae_32.png").exists()
