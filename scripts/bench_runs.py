"""ae_lab as a user runs it, timed: ``python -m ae_lab`` with the epoch timer (``bench_timer``),
its answers to ``--help`` and to a config error, reading MNIST, the PCA fit, and a sweep.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from bench_env import env


def ae_lab(
    overrides: list[str], work: Path, root: str, log: Path, **extra_env: str
) -> tuple[float, int]:
    """Runs ``python -m ae_lab`` as a user would; returns (wall seconds, exit code)."""
    start = time.perf_counter()
    with open(log, "w") as out:
        rc = subprocess.call(
            [sys.executable, "-m", "ae_lab", *overrides],
            cwd=work,
            env={**env(root), **extra_env, "BENCH_T0": str(time.time())},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return time.perf_counter() - start, rc


def timed_ae_lab(
    name: str, extra: list[str], args: argparse.Namespace, accel: str, work: Path, batch_size: int
) -> dict[str, Any]:
    out = work / f"{name}.json"
    overrides = [
        "model=ae",
        "latent=32",
        f"accelerator={accel}",
        f"data.batch_size={batch_size}",
        f"trainer.max_epochs={args.epochs}",
        "+callbacks.bench_timer._target_=bench_timer.EpochTimer",
        f"hydra.run.dir={work / name}",
        *([f"threads={args.threads}"] if args.threads else []),
        *extra,
    ]
    wall, rc = ae_lab(overrides, work, args.data_root, work / f"{name}.log", BENCH_OUT=str(out))
    if rc != 0 or not out.exists():
        tail = (work / f"{name}.log").read_text()[-2000:]
        print(f"  {name} failed (exit {rc}):\n{tail}", file=sys.stderr)
        return {"failed": rc or "no timing written", "cmd": overrides}
    return {**json.loads(out.read_text()), "wall_s": wall, "cmd": overrides}


def answer_times(root: str, repeats: int = 3) -> dict[str, float]:
    """Wall seconds (best of ``repeats``) for ``python -m ae_lab --help`` and for a config error
    (``latent=0``), both of which should answer without importing torch or Lightning."""

    def best(args: list[str]) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            cmd = [sys.executable, "-m", "ae_lab", *args]
            subprocess.run(cmd, env=env(root), capture_output=True)
            times.append(time.perf_counter() - start)
        return min(times)

    return {"help_s": best(["--help"]), "config_error_s": best(["latent=0"])}


def read_times(root: str, repeats: int = 3) -> dict[str, float]:
    """Decoding the MNIST files with torchvision vs. loading the decoded tensors from a cache."""
    from torchvision.datasets import MNIST

    def best(fn) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    def torchvision_read():
        return [MNIST(root, train=t, download=False) for t in (True, False)]

    sets = torchvision_read()
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "mnist.pt"
        torch.save([(d.data, d.targets) for d in sets], cache)
        cached = best(lambda: torch.load(cache))
    return {"torchvision_s": best(torchvision_read), "cached_tensor_s": cached}


def pca_time(root: str, repeats: int = 2) -> float:
    """The baseline's fit (ae_lab.evaluation.pca.fit_pca, 32 components) on all 60k x 784."""
    from torchvision.datasets import MNIST

    from ae_lab.evaluation.pca import fit_pca

    images = MNIST(root, train=True, download=False).data.unsqueeze(1).float().div(255)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fit_pca(images, 32)
        times.append(time.perf_counter() - start)
    return min(times)


def sweep(args: argparse.Namespace, work: Path, parallel: bool) -> dict[str, Any]:
    name = "sweep_parallel" if parallel else "sweep_sequential"
    overrides = [
        "-m",
        "model=ae",
        f"latent={args.sweep_latents}",
        "transform=none,binarize,gaussian",
        f"trainer.max_epochs={args.sweep_epochs}",
        f"hydra.sweep.dir={work / name}",
        *([f"trainer.limit_train_batches={args.sweep_batches}"] if args.sweep_batches else []),
        *(["hydra/launcher=parallel", f"hydra.launcher.n_jobs={args.jobs}"] if parallel else []),
        *([f"threads={args.threads}"] if args.threads and not parallel else []),
    ]
    wall, rc = ae_lab(overrides, work, args.data_root, work / f"{name}.log")
    n_jobs = len(list((work / name).glob("*/metrics.json")))
    return {"wall_s": wall, "rc": rc, "finished": n_jobs, "cmd": overrides}
