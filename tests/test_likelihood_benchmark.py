"""The likelihood benchmark as one command (``experiment=likelihood``): its sweep is exactly the
jobs its YAML declares (each preset job's model, k and prior, times the seeds), every job's
config passes the config checks, each kind of job trains and tests in-process with the NLL
evaluation, and the results page renders its section, the published figures and their verdicts
from a finished sweep's records."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from ae_lab.config import validation
from ae_lab.reporting import verdicts
from ae_lab.run.train import CONFIG_DIR, train
from scripts import results
from tests.conftest import TINY, compose_cfg
from tests.test_config import job_configs, sweep_jobs

NAME = "likelihood"
JOB_DIR = Path(CONFIG_DIR) / "report_job" / NAME


def declared_jobs() -> dict[str, dict]:
    """Each preset job's file, by its name in the sweep (``likelihood/vae``)."""
    return {f"{NAME}/{p.stem}": yaml.safe_load(p.read_text()) for p in JOB_DIR.glob("*.yaml")}


def model_of(job_file: dict) -> str:
    """The model a preset job's file picks (``- override /model: iwae``)."""
    [choice] = [d["override /model"] for d in job_file["defaults"] if "override /model" in d]
    return choice


def swept() -> dict[str, list[str]]:
    """The preset's sweep as its YAML says it: each key's values."""
    cfg = compose_cfg(f"experiment={NAME}")
    return {
        key: [v.strip() for v in str(values).split(",")]
        for key, values in cfg.hydra.sweeper.params.items()
    }


def test_the_sweep_is_every_declared_model_times_every_seed():
    params = swept()
    assert set(params) == {"report_job", "seed"}
    files = declared_jobs()
    assert sorted(params["report_job"]) == sorted(files)  # every job file swept, none other
    # what each job is, from its file (no k or prior: the model's own default)
    expected = set()
    for job in files.values():
        model = job.get("model") or {}
        kind = (model_of(job), model.get("k"), model.get("prior", "standard"))
        expected |= {(*kind, int(seed)) for seed in params["seed"]}
    assert len(expected) == len(files) * len(params["seed"])  # no two files declare one job
    composed = set()
    for _, cfg in job_configs(NAME):
        model = cfg.model
        k = model.get("k") if cfg.hydra.runtime.choices.model == "iwae" else None
        composed.add((cfg.hydra.runtime.choices.model, k, model.prior, cfg.seed))
        # the benchmark's protocol, the same in every job
        assert cfg.data.binarize_target == "sample"
        assert cfg.callbacks.nll.n_samples == 5000
        assert list(model.hidden) == [200, 200] and cfg.latent == 50
    assert composed == expected
    assert len(sweep_jobs(compose_cfg(f"experiment={NAME}"))) == len(expected)


def test_every_job_passes_the_config_checks():
    n = 0
    for _, cfg in job_configs(NAME):
        validation.check_config(cfg)  # a ConfigError names every bad key
        validation.check_trainer(cfg)
        assert validation.argument_problems(cfg) == []
        n += 1
    assert n == math.prod(len(v) for v in swept().values())


# single-batch steps gain nothing from threads, and the suite shares its cores
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("job", sorted(declared_jobs()))
def test_each_job_trains_and_tests_with_the_nll(job, tmp_path, synthetic_root):
    """One tiny step of the job as the sweep composes it (its model, k, prior, networks and
    callbacks), on synthetic digits binarized by the preset, the NLL at K = 3."""
    cfg = compose_cfg(
        f"experiment={NAME}",
        f"report_job={job}",
        "hydra.mode=RUN",
        *TINY,
        "threads=1",
        "logger=none",
        f"data.root={synthetic_root}",
        "data.val_size=100",
        "data.batch_size=50",
        "data.eval_batch_size=50",
        "callbacks.nll.n_samples=3",
        run_dir=tmp_path / "run",
    )
    metrics = train(cfg)
    assert metrics["test/nll_k"] == 3
    assert math.isfinite(metrics["test/nll"]) and metrics["test/nll"] > 0
    # the bound the NLL tightens: -log p(x) <= the negative ELBO, up to the draws' noise
    assert metrics["test/nll"] < metrics["test/neg_elbo"] * 1.05
    logged = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert logged["test/nll"] == pytest.approx(metrics["test/nll"])
    assert logged["test/nll_k"] == 3


# ---------------------------------------------------------------------------- the results page
# fabricated test NLLs per seed, chosen for each verdict of the rule: far below the published
# figure (yes), close to it within the spread (within noise), far above it (no)
NLL = {
    "likelihood/vae": [85.0, 85.2, 85.1],
    "likelihood/iwae_50": [84.70, 84.90, 84.80],
    "likelihood/vae_vamp": [87.0, 87.2, 87.1],
    "likelihood/iwae_5": [85.5, 85.6, 85.7],
    "likelihood/iwae_50_vamp": [84.0, 84.1, 84.2],
}


def fabricated_sweep(path: Path) -> Path:
    """A finished ``experiment=likelihood`` sweep as the records of its jobs would leave it."""
    from torch.utils.tensorboard import SummaryWriter

    cfg = compose_cfg(f"experiment={NAME}")
    declared = OmegaConf.to_container(cfg.report, resolve=True)
    hydra = {
        "overrides": {"task": [f"experiment={NAME}", "threads=1"]},
        "runtime": {"choices": {"experiment": NAME}},
        "launcher": {"n_jobs": 2},
    }
    path.mkdir(parents=True)
    (path / "multirun.yaml").write_text(
        yaml.safe_dump({"hydra": hydra, "report": declared, "threads": 1})
    )
    seeds = swept()["seed"]
    for job, values in NLL.items():
        for seed, nll in zip(seeds, values, strict=True):
            run = path / f"report_job={job.replace('/', '_')},seed={seed}"
            (run / ".hydra").mkdir(parents=True)
            overrides = [f"report_job={job}", f"seed={seed}"]
            (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
            choices = {"model": model_of(declared_jobs()[job]), "report_job": job}
            (run / ".hydra" / "hydra.yaml").write_text(
                yaml.safe_dump({"hydra": {"runtime": {"choices": choices}}})
            )
            (run / "job.json").write_text(json.dumps({"status": "completed", "latent": 50}))
            metrics = {"test/nll": nll, "test/nll_k": 5000, "test/neg_elbo": nll + 4}
            (run / "metrics.json").write_text(json.dumps(metrics))
            with SummaryWriter(run) as events:
                for step in range(3):
                    events.add_scalar("epoch", step, step)
                    events.add_scalar("val/neg_elbo", 100 - step, step)
    return path


def test_the_results_page_shows_the_benchmark_beside_the_published_figures(tmp_path):
    sweep = fabricated_sweep(tmp_path / "likelihood")
    page = results.write_page([sweep], tmp_path / "docs").read_text()
    declared = compose_cfg(f"experiment={NAME}").report
    section = page.split(f"## {declared.title}\n", 1)[1].split("\n## ", 1)[0]
    rows = {line.split(" | ")[0].lstrip("| "): line for line in section.splitlines()}
    expected = {  # published figure -> the verdict its job's fabricated seeds earn
        86.76: "yes",  # Burda's VAE, ours 85.1 ± 0.1
        84.78: "within noise",  # Burda's IWAE k=50, ours 84.80 ± 0.1
        89.78: "yes",  # pythae's VAE
        86.82: "yes",  # pythae's IWAE k=50
        85.79: "no",  # pythae's VampPrior, ours 87.1 ± 0.1
    }
    assert {r.value for r in declared.reference} == set(expected)
    for ref in declared.reference:
        cells = [c.strip() for c in rows[f"{ref.what} (`test/nll`)"].strip("|").split("|")]
        _, published, ours, seeds, ratio, beaten, job = cells
        assert published.startswith(str(ref.value)) and job == ref.job
        mean = sum(NLL[ref.job]) / 3
        assert seeds == "3" and "±" in ours and ours.startswith(f"{mean:.4g}"[:4])
        assert float(ratio) == pytest.approx(mean / ref.value, abs=1e-3)
        assert beaten == expected[ref.value]
        assert ref.note.split(":")[0] in section  # its protocol, as a note under the table
    assert verdicts.BEATEN_RULE in section
    # every job over its seeds, with the K it was scored at, and the learning curves
    for job in NLL:
        assert f"| {job} | completed | 3 |" in section
    assert "5,000" in section or "| 5000 " in section
    assert "![" in section and "*Missing" not in section
