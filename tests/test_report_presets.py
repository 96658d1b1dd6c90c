"""What a run, a sweep summary and the results page show comes from declarations: the headline
metrics of ``ae_lab.reporting.metrics``, and each report preset's ``report`` block (its reference
figures and the page's figures), which the results generator renders without knowing any job's
name."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict
from PIL import Image

from ae_lab.reporting import metrics, report
from ae_lab.run.train import CONFIG_DIR, train
from scripts import results, results_figures, results_sweep
from tests.conftest import TINY
from tests.test_scale import hparams

# the presets whose page is their preset jobs' figures; the novelty study's table per digit left
# out (report.novelty) has tests of its own: tests/test_novelty_page.py
NOVELTY = [d["title"] for d in results_sweep.presets().values() if d.get("novelty")]
PRESETS = {k: v for k, v in results_sweep.presets().items() if not v.get("novelty")}
RUN_FIGURES = {s["figure"] for p in PRESETS.values() for s in p["figures"] if "figure" in s}


def compose_preset(name: str):
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        return compose("config", [f"experiment={name}"], return_hydra_config=True)


def preset_jobs(name: str) -> list[str]:
    params = compose_preset(name).hydra.sweeper.params.report_job
    return [j.strip() for j in params.split(",")]


def test_the_presets_are_found():
    assert {"report_course", "report_auth"} <= set(PRESETS)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_report_job_is_declared_and_every_declared_job_runs(name):
    declared = compose_preset(name).report
    assert declared.title and declared.figures and declared.reference
    jobs = set(preset_jobs(name))
    named = {r.job for r in declared.reference}
    for spec in declared.figures:
        assert results_figures.check(spec) is None, spec
        named |= set(results_figures.jobs_of(spec))
    assert named == jobs  # none left off the page, none the sweep does not run
    for ref in declared.reference:
        assert {"metric", "value", "what"} <= set(ref)


def fake_sweep(path: Path, name: str, declared: dict) -> Path:
    """A finished sweep of preset ``name``: every job completed with every metric and figure a
    declaration can ask for, and a learning curve."""
    from torch.utils.tensorboard import SummaryWriter

    task = [f"experiment={name}"]
    hydra = {"overrides": {"task": task}, "runtime": {"choices": {"experiment": name}}}
    path.mkdir(parents=True)
    (path / "multirun.yaml").write_text(yaml.safe_dump({"hydra": hydra, "report": declared}))
    refs = [r["metric"] for r in declared["reference"]]
    values = {k: 0.5 for k in (*metrics.shown_in(metrics.RESULTS), *refs)}
    for k in range(10):
        values |= {f"test/mse_digit/{k}": 0.01 * k, f"pca/test_mse_digit/{k}": 0.02}
    for job in preset_jobs(name):
        run = path / f"report_job={job.replace('/', '_')}"
        (run / ".hydra").mkdir(parents=True)
        (run / "figures").mkdir()
        (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"report_job={job}"]))
        choices = {"model": "ae", "transform": "none", "report_job": job}
        (run / ".hydra" / "hydra.yaml").write_text(
            yaml.safe_dump({"hydra": {"runtime": {"choices": choices}}})
        )
        (run / "job.json").write_text(json.dumps({"status": "completed", "latent": 8}))
        (run / "metrics.json").write_text(json.dumps(values))
        for figure in RUN_FIGURES:
            Image.new("RGB", (40, 20), "white").save(run / "figures" / figure)
        with SummaryWriter(run) as events:
            for step in range(3):
                for tag in ("epoch", "val/mse", "val/loss", "val/neg_elbo"):
                    events.add_scalar(tag, step if tag == "epoch" else 1 / (step + 1), step)
    return path


def test_the_generator_renders_what_each_preset_declares(tmp_path):
    sweeps = [fake_sweep(tmp_path / name, name, PRESETS[name]) for name in sorted(PRESETS)]
    text = results.write_page(sweeps, tmp_path / "docs").read_text()
    # nothing missing but the novelty study, whose sweeps were not given
    missing = text.split("\n## Missing\n")[-1].strip().splitlines()
    assert missing == [f"- {title}: no sweep given" for title in NOVELTY]
    for declared in PRESETS.values():
        assert f"## {declared['title']}" in text
        assert all(f"| {r['what']} (`{r['metric']}`) |" in text for r in declared["reference"])
        for spec in declared["figures"]:
            assert f"![{spec['caption']}](figures/{spec['file']})" in text
            assert (tmp_path / "docs" / "figures" / spec["file"]).stat().st_size > 0
    # what the sweep declares is what the page shows: one figure, renamed, and the other report
    # listed as missing
    name, declared = sorted(PRESETS.items())[0]
    one = {**declared["figures"][0], "file": "renamed.png", "caption": "A new caption"}
    fake_sweep(tmp_path / "one", name, {**declared, "figures": [one]})
    text = results.write_page([tmp_path / "one"], tmp_path / "page").read_text()
    assert text.count("![") == 1 and "![A new caption](figures/renamed.png)" in text
    others = [d["title"] for n, d in PRESETS.items() if n != name]
    assert all(f"- {title}: no sweep given" in text for title in others)


def test_a_figure_the_generator_cannot_draw_is_named(tmp_path):
    name, declared = sorted(PRESETS.items())[0]
    wrong = [
        {"plot": "pie", "file": "x.png", "caption": "x"},
        {**declared["figures"][0], "oops": 1},
    ]
    sweep = fake_sweep(tmp_path / "sweep", name, {**declared, "figures": wrong})
    with pytest.raises(ValueError, match=r"figure 1 \(x.png\): plot must be one of .*figure 2"):
        results.write_page([sweep], tmp_path / "docs")


def test_the_headline_list_drives_the_run_end_line_hparams_and_the_summary(
    tmp_path, synthetic_root, monkeypatch, caplog
):
    """A metric added to the list (here val/loss, which every run logs) is in the line a run ends
    with, beside its hyperparameters in TensorBoard, in summary.md and on the results page."""
    added = metrics.HeadlineMetric("val/loss", "a metric added to the list")
    monkeypatch.setattr(metrics, "HEADLINE", (*metrics.HEADLINE, added))
    if "PYTORCH_NVML_BASED_CUDA_CHECK" in os.environ:  # a CPU run drops it; restored after
        monkeypatch.setenv(
            "PYTORCH_NVML_BASED_CUDA_CHECK", os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"]
        )
    run = tmp_path / "sweep" / "job"
    overrides = [
        f"data.root={synthetic_root}",
        "data.val_size=100",
        *TINY,
        *(
            f"~callbacks.{c}"
            for c in ("latent_map", "generation", "reconstructions", "per_digit_mse")
        ),
    ]
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(run)
    HydraConfig.instance().set_config(cfg)
    try:
        with caplog.at_level(logging.INFO, logger="ae_lab.run.build"):
            final = train(cfg)
    finally:
        HydraConfig.instance().cfg = None
    block = next(r.getMessage() for r in caplog.records if "run finished" in r.getMessage())
    assert re.search(r"^  val/loss +\d", block, re.M) and re.search(
        rf"^  {metrics.RATIO} +\d", block, re.M
    )
    assert final[metrics.RATIO] == final["test/mse"] / final["pca/test_mse"]  # one computation
    params, shown = hparams(run)
    assert {"val/loss", metrics.RATIO} <= shown and "time/wall_s" not in shown
    assert params["model"] == "ae" and int(params["n_params"]) == final["n_params"]
    assert yaml.safe_load((run / "hparams.yaml").read_text())["n_params"] == final["n_params"]
    (run / ".hydra").mkdir()
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["latent=32"]))
    report.summarize(run.parent)
    assert "| val/loss |" in (run.parent / "summary.md").read_text()
    page = results.write_page([run.parent], tmp_path / "docs").read_text()
    assert "| val/loss |" in page
