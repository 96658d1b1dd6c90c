"""``make bench``: ae_lab's training speed against a plain PyTorch loop and the classic MNIST loop.

In one invocation, on the CPU and (where present) on the GPU, at each of ``--batch-sizes``:

- the plain loop: the same 55k training images resident on the device as one tensor, a plain
  PyTorch loop, the same dense autoencoder (784-128-32) and Adam, against ``python -m ae_lab``
  with its default callbacks and TensorBoard logger, in ``--repeats`` rounds, each between two
  runs of the plain loop. Each round's ratio is against the plain runs right before and after it;
  the table gives the median over rounds and their range. The ratio is ae_lab's cost per step
  against no framework at all (Lightning's loop, callbacks, logging);
- at the first batch size: the classic loop (torchvision's MNIST with ``ToTensor``, a shuffling
  ``DataLoader``, a plain loop) and ae_lab with ``trainer.precision=bf16-mixed``, with
  ``compile=true`` and with ``data.fast=false`` (ae_lab's loop on the classic data path);
  ``--variants`` adds ``fused-adam`` (``+optimizer.fused=true``) and ``fused-adam+compile``;
- the start-up of ``python -m ae_lab`` (launch to the first training step, which includes the
  PCA baseline fit), ``--help`` and a config error, the PCA fit itself, and reading MNIST
  (torchvision vs. a cached tensor);
- a 12-job sweep (``latent=2,4,8,16 transform=none,binarize,gaussian``), sequential vs. the
  ``hydra/launcher=parallel`` launcher.

Samples/s and epoch time count training batches only (no validation). It prints a table and
prepends it, with the date, the hardware, the load and the command, to ``docs/benchmarks.md``.
``--quick`` (one epoch, the plain loop and ae_lab only, no sweep) takes about two minutes on two
cores with the default 3 rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from statistics import mean, median
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's ae_lab, also for the in-process classic loop
PER_EPOCH = ("epoch_s", "cpu_s", "samples")
# the environment this script was started with: importing Lightning (ae_lab does, in the
# reference loops) sets PYTORCH_NVML_BASED_CUDA_CHECK, which the runs it starts must not inherit
LAUNCH_ENV = dict(os.environ)
RESULTS_MARK = "<!-- bench:results (newest first; scripts/bench.py inserts below) -->"


def steady_part(per_epoch: list[Any]) -> list[Any]:
    """The epochs after the first when there are several: the first also pays for warm-up
    (allocator, torch.compile), which a longer run amortises."""
    return per_epoch[1:] if len(per_epoch) > 1 else per_epoch


def rates(per_epoch: dict[str, list[Any]]) -> dict[str, float]:
    """Samples per wall second and per CPU second, and the mean epoch time."""
    samples, wall, cpu = sum(per_epoch["samples"]), per_epoch["epoch_s"], per_epoch["cpu_s"]
    return {"rate": samples / sum(wall), "cpu_rate": samples / sum(cpu), "epoch": mean(wall)}


def summarise(result: dict[str, Any]) -> None:
    """Adds ``rates`` over the steady epochs of one run."""
    result.update(rates({k: steady_part(result[k]) for k in PER_EPOCH}))


def pool(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from several runs of the same loop: their steady epochs together."""
    pooled = {k: [x for r in results for x in steady_part(r[k])] for k in PER_EPOCH}
    return {**pooled, **rates(pooled)}


def pooled_rounds(rounds: list[dict[str, Any]], plains: list[dict[str, Any]]) -> dict[str, Any]:
    """ae_lab's rounds pooled, with each round's ratio to the plain loop run right before and
    right after it (``plains[k]`` and ``plains[k + 1]``). On a shared machine the load changes
    from one minute to the next; a ratio within a round sees the same load on both sides, and the
    median over rounds drops the round that a burst of load hit on one side only."""
    done = [(k, r) for k, r in enumerate(rounds) if "failed" not in r]
    if not done:
        return rounds[0]
    result = pool([r for _, r in done])
    for key, rate in (("ratios", "rate"), ("cpu_ratios", "cpu_rate")):
        result[key] = [pool([r])[rate] / pool(plains[k : k + 2])[rate] for k, r in done]
    for key in ("startup_s", "pca_fit_s", "wall_s"):
        values = [r[key] for _, r in done if r.get(key) is not None]
        result[key] = median(values) if values else None
    result["best_ratio"] = fastest_epoch(result) / fastest_epoch(pool(plains))
    return result


def fastest_epoch(result: dict[str, Any]) -> float:
    """Samples/s of the fastest steady epoch: the one least slowed by other load. Interference
    only ever slows a loop down, so fastest against fastest is the least disturbed ratio."""
    return max(n / s for n, s in zip(result["samples"], result["epoch_s"], strict=True))


def default_recipe(
    model: torch.nn.Module, steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """ae_lab's default optimizer and schedule (``optimizer=adam scheduler=onecycle``) written out
    by hand, so the reference loops train exactly as ae_lab does and the ratio is like for like."""
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    return opt, torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=3e-3, total_steps=steps, pct_start=0.15
    )


def plain_step(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    x: torch.Tensor,
) -> None:
    """One step of the reference loops, with nothing around it: forward, MSE, backward, Adam."""
    loss = torch.nn.functional.mse_loss(torch.sigmoid(model.decoder(model.encoder(x))), x)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()


@contextlib.contextmanager
def plain_pytorch_env() -> Iterator[None]:
    """The reference loops run as a script that never imports Lightning would. They use ae_lab's
    model and data, which import Lightning, which sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1``; with
    it every Adam step of a CUDA build of torch tries to load NVML again (about 200 us per step
    here without a GPU), which a plain PyTorch script does not pay."""
    key = "PYTORCH_NVML_BASED_CUDA_CHECK"
    saved = os.environ.pop(key, None)
    if key in LAUNCH_ENV:
        os.environ[key] = LAUNCH_ENV[key]
    try:
        yield
    finally:
        os.environ.pop(key, None)
        if saved is not None:
            os.environ[key] = saved


@plain_pytorch_env()
def classic_loop(root: str, epochs: int, batch_size: int, device: str) -> dict[str, Any]:
    """The loop of the classic tutorials: per-sample PIL decode + ToTensor, DataLoader, plain
    PyTorch, same model (ae_lab's DenseAE) and the same 55k training images as ae_lab."""
    from torch.utils.data import DataLoader, Subset
    from torchvision import transforms
    from torchvision.datasets import MNIST

    from ae_lab.data import MNISTDataModule
    from ae_lab.models import DenseAE

    torch.manual_seed(0)
    dataset = MNIST(root, train=True, transform=transforms.ToTensor(), download=False)
    _, train_idx = MNISTDataModule(root=root).split_indices(len(dataset))
    loader = DataLoader(
        Subset(dataset, train_idx.tolist()),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    model = DenseAE(latent_dim=32, hidden=[128]).to(device)
    opt, sched = default_recipe(model, epochs * len(loader))
    epoch_s, cpu_s, samples = [], [], []
    for _ in range(epochs):
        start, cpu, n = time.perf_counter(), time.process_time(), 0
        for x, _ in loader:
            x = x.to(device, non_blocking=True)
            plain_step(model, opt, sched, x)
            n += len(x)
        if device == "cuda":
            torch.cuda.synchronize()
        epoch_s.append(time.perf_counter() - start)
        cpu_s.append(time.process_time() - cpu)
        samples.append(n)
    return {"epoch_s": epoch_s, "cpu_s": cpu_s, "samples": samples}


@plain_pytorch_env()
def plain_loop(root: str, epochs: int, batch_size: int, device: str) -> dict[str, Any]:
    """The reference for ae_lab's own cost: a plain PyTorch loop over the same 55k training images
    resident on the device as one uint8 tensor, a shuffled order per epoch, each batch gathered and
    converted in two ops; the same model (ae_lab's DenseAE), loss and Adam. Whatever ae_lab adds
    per step on top of this (Lightning's loop, callbacks, logging) shows in the ratio."""

    from ae_lab.data import MNISTDataModule
    from ae_lab.models import DenseAE

    data = MNISTDataModule(root=root, download=False)
    data.setup()
    images = data.splits["train"][0].unsqueeze(1).to(device)
    torch.manual_seed(0)
    model = DenseAE(latent_dim=32, hidden=[128]).to(device)
    opt, sched = default_recipe(model, epochs * math.ceil(len(images) / batch_size))
    epoch_s, cpu_s, samples = [], [], []
    for _ in range(epochs):
        start, cpu = time.perf_counter(), time.process_time()
        order = torch.randperm(len(images), device=device)
        for idx in order.split(batch_size):
            x = images.index_select(0, idx) / 255.0
            plain_step(model, opt, sched, x)
        if device == "cuda":
            torch.cuda.synchronize()
        epoch_s.append(time.perf_counter() - start)
        cpu_s.append(time.process_time() - cpu)
        samples.append(len(images))
    return {"epoch_s": epoch_s, "cpu_s": cpu_s, "samples": samples}


def env(root: str) -> dict[str, str]:
    path = os.pathsep.join([str(REPO), str(REPO / "scripts"), os.environ.get("PYTHONPATH", "")])
    return {**LAUNCH_ENV, "AE_LAB_DATA_DIR": root, "PYTHONPATH": path, "HYDRA_FULL_ERROR": "1"}


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


def hardware() -> str:
    from ae_lab.core.hardware import cpu_name

    gpu = f"GPU: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "no GPU"
    versions = f"torch {torch.__version__}, lightning {version('lightning')}"
    return f"{cpu_name()}, {os.cpu_count()} cores; {versions}; {gpu}"


def fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def round_ratios(values: list[float] | None) -> str:
    """``0.81x (0.77-0.86)``: the median of the rounds' ratios and their range."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}x"
    return f"{median(values):.2f}x ({min(values):.2f}-{max(values):.2f})"


def ratio(rate: float, base: float | None) -> str:
    return f"{rate / base:.2f}x" if base else "-"


def report(args: argparse.Namespace, results: dict[str, Any], load: tuple[float, float]) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cmd = "python scripts/bench.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    lines = [
        f"### {now}{' (quick)' if args.quick else ''}",
        "",
        f"- command: `{cmd.strip()}`",
        f"- hardware: {hardware()}",
        f"- torch threads per run: {args.threads or 'ae_lab default'}"
        f"{f' ({args.default_threads} in the reference loops)' if not args.threads else ''}; "
        f"load average (1 min) before/after: {load[0]:.1f} / {load[1]:.1f} "
        f"on {os.cpu_count()} cores",
        "- model: dense AE 784-128-32, Adam at peak lr 3e-3 with the one-cycle schedule (ae_lab's "
        f"defaults, in every loop), batch {args.batch_sizes}, "
        f"{args.epochs} epoch(s) of 55,000 training images, ae_lab in {args.repeats} round(s) "
        "between runs of the plain loop; samples/s and epoch time over "
        "training batches only, epochs after the first when there are several; ratios against "
        "the plain loop (median of the rounds, range in brackets) and the classic loop at the same "
        "batch size, in this run; samples/CPU-s "
        "divides by the process's CPU time instead of wall time (steadier on a shared machine)",
        "",
        "| device | batch | run | samples/s | epoch s | vs plain | vs classic | samples/CPU-s "
        "| vs plain (CPU) | start-up s | PCA fit s | wall s |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (device, batch_size), runs in results["loops"].items():
        plain = runs.get("plain", {}).get("rate")
        plain_cpu = runs.get("plain", {}).get("cpu_rate")
        classic = runs.get("classic", {}).get("rate")
        for name, r in runs.items():
            if "failed" in r:
                failed = f"failed ({r['failed']})"
                lines.append(f"| {device} | {batch_size} | {name} | {failed} |||||||||")
                continue
            if "ratios" in r:  # ae_lab's rounds, each against the plain loops around it
                vs_plain, vs_plain_cpu = round_ratios(r["ratios"]), round_ratios(r["cpu_ratios"])
            else:
                vs_plain, vs_plain_cpu = ratio(r["rate"], plain), ratio(r["cpu_rate"], plain_cpu)
            lines.append(
                f"| {device} | {batch_size} | {name} | {r['rate']:,.0f} | {fmt(r['epoch'])} | "
                f"{vs_plain} | {ratio(r['rate'], classic)} | {r['cpu_rate']:,.0f} | "
                f"{vs_plain_cpu} | "
                f"{fmt(r.get('startup_s'))} | {fmt(r.get('pca_fit_s'))} | {fmt(r.get('wall_s'))} |"
            )
    reads, pca, answers = results["read"], results["pca_fit_60k_s"], results["answers"]
    best = [
        f"batch {b} {runs['ae_lab']['best_ratio']:.2f}x"
        for (d, b), runs in results["loops"].items()
        if "best_ratio" in runs.get("ae_lab", {})
    ]
    lines += [
        "",
        f"- ae_lab's fastest epoch against the plain loop's fastest: {', '.join(best) or '-'}",
        f"- `python -m ae_lab --help` {answers['help_s']:.2f} s, a config error (`latent=0`) "
        f"{answers['config_error_s']:.2f} s (wall, best of 3; target < 1 s)",
        f"- reading MNIST (train + test): torchvision {reads['torchvision_s']:.3f} s, "
        f"a cached decoded tensor {reads['cached_tensor_s']:.3f} s (best of 3)",
        f"- PCA baseline fit, 60,000 x 784, 32 components, in this process: {pca:.2f} s "
        "(best of 2; target <= 1 s)",
    ]
    if results.get("sweeps"):
        seq, par = results["sweeps"]["sequential"], results["sweeps"]["parallel"]
        n = len(args.sweep_latents.split(",")) * 3
        limit = f", {args.sweep_batches} train batches" if args.sweep_batches else ""
        lines += [
            f"- sweep of {n} jobs (`latent={args.sweep_latents} transform=none,binarize,gaussian`, "
            f"{args.sweep_epochs} epoch(s){limit}, default batch size): "
            f"sequential {seq['wall_s']:.0f} s "
            f"({seq['finished']} finished), `hydra/launcher=parallel hydra.launcher.n_jobs="
            f"{args.jobs}` {par['wall_s']:.0f} s ({par['finished']} finished): "
            f"{seq['wall_s'] / par['wall_s']:.2f}x",
        ]
    if not torch.cuda.is_available():
        lines.append("- GPU: none on this machine; GPU figures not measured")
    return "\n".join(lines) + "\n"


def write_doc(section: str, path: Path) -> None:
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{RESULTS_MARK}\n"
    if RESULTS_MARK not in text:
        text = text.rstrip("\n") + f"\n\n## Results\n\n{RESULTS_MARK}\n"
    text = text.replace(RESULTS_MARK, f"{RESULTS_MARK}\n\n{section}", 1)
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="1 epoch; plain loop and ae_lab only; no sweep"
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="rounds of ae_lab between plain loops at each batch size; ratios are their median",
    )
    parser.add_argument(
        "--batch-sizes", default="64,128", help="plain and ae_lab at each; the rest at the first"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads per run")
    parser.add_argument("--variants", default=None, help="default: bf16,compile,classic-data")
    parser.add_argument("--sweep-epochs", type=int, default=5)
    parser.add_argument("--sweep-latents", default=None, help="default: 2,4,8,16")
    parser.add_argument("--sweep-batches", type=int, default=None, help="limit_train_batches")
    parser.add_argument("--jobs", type=int, default=2, help="parallel sweep's n_jobs")
    parser.add_argument("--no-sweep", action="store_true")
    parser.add_argument("--data-root", default=os.environ.get("AE_LAB_DATA_DIR", "data"))
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    parser.add_argument("--no-doc", action="store_true", help="print only")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.no_sweep = 1, True
    if args.variants is None:
        args.variants = "" if args.quick else "bf16,compile,classic-data"
    args.sweep_latents = args.sweep_latents or "2,4,8,16"
    # the reference loops in this process take the count an ae_lab run takes by default
    from ae_lab.core.hardware import default_threads

    args.default_threads = default_threads().threads
    torch.set_num_threads(args.threads or args.default_threads)
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=args.threads)

    load_before = os.getloadavg()[0]
    accels = {"cpu": "cpu"} | ({"cuda": "gpu"} if torch.cuda.is_available() else {})
    variants = {
        "bf16": ["trainer.precision=bf16-mixed"],
        "compile": ["compile=true"],
        "classic-data": ["data.fast=false"],
        "fused-adam": ["+optimizer.fused=true"],
        "fused-adam+compile": ["+optimizer.fused=true", "compile=true"],
    }
    chosen = [v for v in args.variants.split(",") if v]
    results: dict[str, Any] = {"loops": {}}
    with tempfile.TemporaryDirectory(prefix="ae_lab_bench_") as tmp:
        work = Path(tmp)
        for device, accel in accels.items():
            for i, batch_size in enumerate(int(b) for b in args.batch_sizes.split(",")):
                name = f"{device}_{batch_size}"
                plains = [plain_loop(args.data_root, args.epochs, batch_size, device)]
                rounds = []
                for k in range(args.repeats):
                    print(f"[{device}, batch {batch_size}] round {k + 1}: ae_lab ...", flush=True)
                    rounds.append(timed_ae_lab(f"{name}_{k}", [], args, accel, work, batch_size))
                    print(f"[{device}, batch {batch_size}] round {k + 1}: plain ...", flush=True)
                    plains.append(plain_loop(args.data_root, args.epochs, batch_size, device))
                runs = {"plain": pool(plains), "ae_lab": pooled_rounds(rounds, plains)}
                if i == 0 and not args.quick:
                    print(f"[{device}, batch {batch_size}] classic loop ...", flush=True)
                    runs["classic"] = classic_loop(args.data_root, args.epochs, batch_size, device)
                for v in chosen if i == 0 else []:
                    print(f"[{device}, batch {batch_size}] ae_lab {v} ...", flush=True)
                    runs[f"ae_lab {v}"] = timed_ae_lab(
                        f"{name}_{v}", variants[v], args, accel, work, batch_size
                    )
                for r in runs.values():
                    if "epoch_s" in r and "rate" not in r:
                        summarise(r)
                results["loops"][device, batch_size] = runs
        print("reading MNIST, fitting PCA ...", flush=True)
        results["read"] = read_times(args.data_root)
        results["pca_fit_60k_s"] = pca_time(args.data_root)
        print("--help and a config error ...", flush=True)
        results["answers"] = answer_times(args.data_root)
        if not args.no_sweep:
            print("sweep, sequential ...", flush=True)
            results["sweeps"] = {"sequential": sweep(args, work, parallel=False)}
            print("sweep, parallel ...", flush=True)
            results["sweeps"]["parallel"] = sweep(args, work, parallel=True)
    section = report(args, results, (load_before, os.getloadavg()[0]))
    print("\n" + section)
    loops = {f"{d} {b}": runs for (d, b), runs in results["loops"].items()}
    print(json.dumps({**results, "loops": loops}, indent=1, default=str), file=sys.stderr)
    if not args.no_doc:
        args.doc.parent.mkdir(parents=True, exist_ok=True)
        write_doc(section, args.doc)
        print(f"written to {args.doc}")


if __name__ == "__main__":
    main()
