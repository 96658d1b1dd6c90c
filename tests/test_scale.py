"""Scaling out: the ``ae-lab`` command, submitit sweeps and DDP (through the real entrypoint, in
processes), and an Optuna search (in this process)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import yaml

from ae_lab.data.loader import TensorBatchLoader
from ae_lab.run.cli import hoist_multirun
from tests.conftest import FAST, REPO, TINY, run_ae_lab, sweep_in_process


def test_multirun_flag_moves_to_the_front_once() -> None:
    assert hoist_multirun(["model=ae", "-m", "latent=2,8", "--multirun"]) == [
        "--multirun",
        "model=ae",
        "latent=2,8",
    ]
    assert hoist_multirun(["latent=2"]) == ["latent=2"]


@pytest.mark.parametrize("shuffle", [False, True])
def test_ddp_processes_split_the_data_into_equal_shards(shuffle: bool) -> None:
    images = torch.zeros(9, 28, 28, dtype=torch.uint8)
    labels = torch.arange(9)

    def shard(rank: int) -> list[int]:
        loader = TensorBatchLoader(images, labels, 2, shuffle, seed=3, rank=rank, world_size=2)
        seen = [int(i) for _, y in loader for i in y]
        assert len(loader) == 3 and len(seen) == 5
        return seen

    first, second = shard(0), shard(1)
    assert set(first) | set(second) == set(range(9))
    assert len(set(first) & set(second)) == 1  # one image padded in, as DistributedSampler does


@pytest.mark.integration
def test_help_lists_every_group_and_three_examples(tmp_path: Path) -> None:
    out = run_ae_lab("--help", cwd=tmp_path, data_root=tmp_path).stdout
    groups = {line.split(" (default")[0] for line in out.splitlines() if "(default: " in line}
    assert {"model", "transform", "callbacks", "experiment", "hparams_search"} <= groups
    assert "hydra/launcher=submitit_slurm" in out and "hparams_search=optuna" in out
    assert sum(line.startswith("  ae-lab ") for line in out.splitlines()) == 3


def console_script() -> tuple[str, ...]:
    """``python -c`` running what the installed ``ae-lab`` script runs, read from pyproject."""
    target = re.search(r'^ae-lab = "(.+)"$', (REPO / "pyproject.toml").read_text(), re.M)
    module, func = target.group(1).split(":")
    return ("-c", f"import sys; sys.argv[0] = 'ae-lab'; from {module} import {func}; {func}()")


def audit_records(folder: Path) -> list[str]:
    """What tests/write_audit recorded, one JSON text per process."""
    return [p.read_text() for p in sorted(folder.glob("*.json"))]


def job_dirs(sweep: Path) -> list[Path]:
    return sorted(p.parent for p in sweep.glob("*/job.json"))


def hparams(run_dir: Path) -> tuple[dict[str, float | str], set[str]]:
    """The hyperparameters and the metric tags of the HPARAMS tab, read from the event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    params: dict[str, float | str] = {}
    metrics: set[str] = set()
    for events in sorted(run_dir.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events))
        acc.Reload()
        try:
            contents = acc.PluginTagToContent("hparams").values()
        except KeyError:  # an event file without hyperparameters
            continue
        for content in contents:
            data = HParamsPluginData.FromString(content)
            metrics |= {m.name.tag for m in data.experiment.metric_infos}
            for key, value in data.session_start_info.hparams.items():
                params[key] = value.string_value or value.number_value
    return params, metrics


@pytest.mark.integration
def test_submitit_local_sweep_through_the_console_script(tmp_path: Path, mnist_root: Path) -> None:
    """A job through submitit, started as ``ae-lab latent=4 -m model=vae``: its own process,
    its record, the sweep's summary and the HPARAMS entry with the final metrics (that every
    model's entry has the same keys: tests/test_views_tensorboard.py)."""
    sweep = tmp_path / "sweep"
    run_ae_lab(
        "latent=4",
        "-m",
        "model=vae",
        "hydra/launcher=submitit_local",
        f"hydra.sweep.dir={sweep}",
        *TINY,
        "threads=1",
        "callbacks.latent_map.n_points=50",
        cwd=tmp_path,
        data_root=mnist_root,
        entry=console_script(),
    )
    [job] = job_dirs(sweep)
    assert json.loads((job / "job.json").read_text())["status"] == "completed"
    assert (sweep / ".submitit").is_dir()  # the job went through submitit
    [row] = [r for r in (sweep / "summary.md").read_text().splitlines() if "| completed |" in r]
    assert "model=vae" in row and "| completed | 4 |" in row
    params, metrics = hparams(job)
    assert (params["model"], params["latent"]) == ("vae", 4)
    assert {"test/mse", "pca/test_mse", "test/mse_ratio"} <= metrics


@pytest.mark.integration
def test_optuna_search_writes_the_best_trial(tmp_path: Path, mnist_root: Path) -> None:
    sweep = tmp_path / "search"
    search = sweep_in_process(  # in this process: the search needs none of its own
        "hparams_search=optuna",
        "model=sparse_ae",
        "hydra.sweeper.n_trials=3",
        *FAST,
        sweep_dir=sweep,
        data_root=mnist_root,
    )
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert set(best["best_params"]) == {"optimizer.lr", "data.batch_size", "model.weight"}
    assert 1e-4 <= best["best_params"]["optimizer.lr"] <= 1e-2
    jobs = job_dirs(sweep)
    assert len(jobs) == 3
    val_mse = [json.loads((j / "metrics.json").read_text())["val/mse"] for j in jobs]
    assert best["best_value"] == pytest.approx(min(val_mse))
    assert "Best value" in search.out + search.err
    assert (sweep / "summary.md").read_text().count("| completed |") == 3


@pytest.mark.integration
def test_two_process_ddp_run_on_cpu(tmp_path: Path, mnist_root: Path, monkeypatch) -> None:
    """One run dir and one metrics.json from 2 gloo processes; the PCA fitted once and its test
    MSE reduced over both halves of the test set to the value of the whole set; no metric left
    to one process's value; every file of the run written by the first process alone."""
    run = tmp_path / "run"
    audit = tmp_path / "audit"
    audit.mkdir()
    monkeypatch.setenv("PYTHONPATH", str(REPO / "tests" / "write_audit"))
    monkeypatch.setenv("AE_LAB_AUDIT_ROOT", str(run))
    monkeypatch.setenv("AE_LAB_AUDIT_DIR", str(audit))
    proc = run_ae_lab(
        "accelerator=cpu",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "latent=8",
        *TINY,
        "trainer.limit_test_batches=null",
        "threads=1",
        "callbacks.latent_map.n_points=50",
        f"hydra.run.dir={run}",
        cwd=tmp_path,
        data_root=mnist_root,
    )
    assert [p.name for p in tmp_path.rglob("metrics.json")] == ["metrics.json"]
    metrics = json.loads((run / "metrics.json").read_text())
    logs = "".join(p.read_text() for p in run.glob("*.log"))
    assert "train_ddp_process_1.log" in {p.name for p in run.glob("*.log")}
    assert logs.count("PCA baseline: 8 components") == 1
    # every epoch-level metric is reduced over the processes, timings included
    assert "It is recommended to use `self.log(" not in proc.stderr + logs
    assert metrics["time/epoch_s"] > 0 and metrics["time/samples_per_s"] > 0
    # what each process wrote in the run dir: the second process, only its own log
    written = {r["rank"]: set(r["written"]) for r in map(json.loads, audit_records(audit))}
    assert written.keys() == {"0", "1"}
    assert {"metrics.json", "job.json", "figures/latent_map.png"} <= written["0"]
    assert written["1"] == {"train_ddp_process_1.log"}

    from ae_lab.data import MNISTDataModule
    from ae_lab.evaluation.pca import LinearReconstruction, fit_pca

    dm = MNISTDataModule(root=str(mnist_root), download=False)
    dm.setup()
    pca = fit_pca(dm.images("train"), 8)
    recon = LinearReconstruction(torch.as_tensor(pca.components_), torch.as_tensor(pca.mean_))
    test = dm.images("test")
    expected = float(((recon(test) - test) ** 2).mean())
    assert metrics["pca/test_mse"] == pytest.approx(expected, rel=1e-4)
    assert 0 < metrics["test/mse"] < 1
    # the per-digit sums and counts (torchmetrics states) are added up over both processes: the
    # count-weighted mean of the per-digit MSEs is the MSE of the whole test set
    counts = torch.bincount(dm.labels("test").long(), minlength=10).double()
    for prefix, overall in (("test/mse_digit", "test/mse"), ("pca/test_mse_digit", "pca/test_mse")):
        per_digit = torch.tensor([metrics[f"{prefix}/{k}"] for k in range(10)], dtype=torch.float64)
        weighted = float((per_digit * counts).sum() / counts.sum())
        assert weighted == pytest.approx(metrics[overall], rel=1e-4)
