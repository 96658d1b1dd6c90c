"""``make bench``: how fast ae_lab trains compared with the classic MNIST autoencoder loop.

In one invocation, on the CPU and (where present) on the GPU:

- the classic loop: torchvision's MNIST with ``ToTensor``, a shuffling ``DataLoader``, a plain
  PyTorch loop, against ``python -m ae_lab``: the same dense autoencoder (784-128-32), Adam,
  batch size and epochs, on the same 55k training images. Samples/s and epoch time count training
  batches only (no validation) and the ratio is ae_lab's samples/s over the classic loop's;
- ae_lab with ``trainer.precision=bf16-mixed``, with ``compile=true`` and with ``data.fast=false``
  (ae_lab's loop on the classic data path), to show where the time goes; ``--variants`` adds
  ``fused-adam`` (``+optimizer.fused=true``) and ``fused-adam+compile``;
- the start-up of ``python -m ae_lab`` (launch to the first training step, which includes the
  PCA baseline fit), the PCA fit itself, and reading MNIST (torchvision vs. a cached tensor);
- a 12-job sweep (``latent=2,4,8,16 transform=none,binarize,gaussian``), sequential vs. the
  ``hydra/launcher=parallel`` launcher.

It prints a table and prepends it, with the date, the hardware and the command, to
``docs/benchmarks.md``. ``--quick`` finishes in a few minutes on two cores.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's ae_lab, also for the in-process classic loop
RESULTS_MARK = "<!-- bench:results (newest first; scripts/bench.py inserts below) -->"


class EpochTimer(L.Callback):
    """Added to benchmarked runs (``+callbacks.bench_timer._target_=bench.EpochTimer``): times
    each training pass without validation, and the launch-to-first-step start-up."""

    def __init__(self) -> None:
        self.launched = float(os.environ.get("BENCH_T0", time.time()))
        self.first_step: float | None = None
        self.epochs: list[tuple[float, int]] = []

    @staticmethod
    def _sync(device: torch.device) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sync(pl_module.device)
        self._start, self._samples = time.perf_counter(), 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.first_step is None:
            self.first_step = time.time() - self.launched

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._samples += len(batch["target"])
        if batch_idx == trainer.num_training_batches - 1:
            self._sync(pl_module.device)
            self.epochs.append((time.perf_counter() - self._start, self._samples))

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pca = next((c for c in trainer.callbacks if hasattr(c, "fit_seconds")), None)
        result = {
            "epoch_s": [t for t, _ in self.epochs],
            "samples": [n for _, n in self.epochs],
            "startup_s": self.first_step,
            "pca_fit_s": getattr(pca, "fit_seconds", None),
            "threads": torch.get_num_threads(),
            "device": str(pl_module.device),
        }
        Path(os.environ["BENCH_OUT"]).write_text(json.dumps(result))


def steady(epoch_s: list[float], samples: list[int]) -> tuple[float, float]:
    """(samples/s, epoch seconds) over the epochs after the first when there are several: the
    first one also pays for warm-up (allocator, torch.compile), which a longer run amortises."""
    if len(epoch_s) > 1:
        epoch_s, samples = epoch_s[1:], samples[1:]
    return sum(samples) / sum(epoch_s), sum(epoch_s) / len(epoch_s)


def classic_loop(root: str, epochs: int, batch_size: int, device: str) -> dict[str, Any]:
    """The loop of the classic tutorials: per-sample PIL decode + ToTensor, DataLoader, plain
    PyTorch, same model (ae_lab's DenseAE) and the same 55k training images as ae_lab."""
    import torch.nn.functional as F
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
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    epoch_s, samples = [], []
    for _ in range(epochs):
        start, n = time.perf_counter(), 0
        for x, _ in loader:
            x = x.to(device, non_blocking=True)
            loss = F.mse_loss(torch.sigmoid(model.decoder(model.encoder(x))), x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += len(x)
        if device == "cuda":
            torch.cuda.synchronize()
        epoch_s.append(time.perf_counter() - start)
        samples.append(n)
    return {"epoch_s": epoch_s, "samples": samples}


def env(root: str) -> dict[str, str]:
    path = os.pathsep.join([str(REPO), str(REPO / "scripts"), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "AE_LAB_DATA_DIR": root, "PYTHONPATH": path, "HYDRA_FULL_ERROR": "1"}


def ae_lab(overrides: list[str], work: Path, root: str, log: Path) -> tuple[float, int]:
    """Runs ``python -m ae_lab`` as a user would; returns (wall seconds, exit code)."""
    start = time.perf_counter()
    with open(log, "w") as out:
        rc = subprocess.call(
            [sys.executable, "-m", "ae_lab", *overrides],
            cwd=work,
            env={**env(root), "BENCH_T0": str(time.time())},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return time.perf_counter() - start, rc


def timed_ae_lab(
    name: str, extra: list[str], args: argparse.Namespace, accel: str, work: Path
) -> dict[str, Any]:
    out = work / f"{name}.json"
    overrides = [
        "model=ae",
        "latent=32",
        f"accelerator={accel}",
        f"data.batch_size={args.batch_size}",
        f"trainer.max_epochs={args.epochs}",
        "+callbacks.bench_timer._target_=bench.EpochTimer",
        f"hydra.run.dir={work / name}",
        *([f"threads={args.threads}"] if args.threads else []),
        *extra,
    ]
    os.environ["BENCH_OUT"] = str(out)
    wall, rc = ae_lab(overrides, work, args.data_root, work / f"{name}.log")
    if rc != 0 or not out.exists():
        tail = (work / f"{name}.log").read_text()[-2000:]
        print(f"  {name} failed (exit {rc}):\n{tail}", file=sys.stderr)
        return {"failed": rc or "no timing written", "cmd": overrides}
    return {**json.loads(out.read_text()), "wall_s": wall, "cmd": overrides}


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
    """The baseline's fit (ae_lab.callbacks.pca.fit_pca, 32 components) on all 60k x 784."""
    from torchvision.datasets import MNIST

    from ae_lab.callbacks.pca import fit_pca

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
    cpu = platform.processor() or platform.machine()
    try:
        names = [
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} cores; torch {torch.__version__}, lightning {L.__version__}"
    if torch.cuda.is_available():
        text += f"; GPU: {torch.cuda.get_device_name(0)}"
    else:
        text += "; no GPU"
    return text


def fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def report(args: argparse.Namespace, results: dict[str, Any], load: tuple[float, float]) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cmd = "python scripts/bench.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    lines = [
        f"### {now}{' (quick)' if args.quick else ''}",
        "",
        f"- command: `{cmd.strip()}`",
        f"- hardware: {hardware()}",
        f"- torch threads per run: {args.threads or 'torch default'}; "
        f"load average (1 min) before/after: {load[0]:.1f} / {load[1]:.1f}",
        f"- model: dense AE 784-128-32, Adam 1e-3, batch {args.batch_size}, "
        f"{args.epochs} epoch(s) of 55,000 training images; samples/s and epoch time over "
        "training batches only, epochs after the first when there are several",
        "",
        "| device | run | samples/s | epoch s | vs classic | start-up s | PCA fit s | wall s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for device, runs in results["loops"].items():
        base = runs.get("classic", {}).get("rate")
        for name, r in runs.items():
            if "failed" in r:
                lines.append(f"| {device} | {name} | failed ({r['failed']}) | | | | | |")
                continue
            ratio = f"{r['rate'] / base:.2f}x" if base else "-"
            lines.append(
                f"| {device} | {name} | {r['rate']:,.0f} | {fmt(r['epoch'])} | {ratio} | "
                f"{fmt(r.get('startup_s'))} | {fmt(r.get('pca_fit_s'))} | {fmt(r.get('wall_s'))} |"
            )
    reads, pca = results["read"], results["pca_fit_60k_s"]
    lines += [
        "",
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
        "--quick", action="store_true", help="1 epoch, no variants, a 6-job sweep of 50 batches"
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
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
        args.epochs, args.sweep_epochs = 1, 1
        args.sweep_batches = args.sweep_batches or 50
    if args.variants is None:
        args.variants = "" if args.quick else "bf16,compile,classic-data"
    if args.sweep_latents is None:
        args.sweep_latents = "2,4" if args.quick else "2,4,8,16"
    if args.threads:
        torch.set_num_threads(args.threads)
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
            runs: dict[str, Any] = {}
            print(f"[{device}] classic loop ...", flush=True)
            runs["classic"] = classic_loop(args.data_root, args.epochs, args.batch_size, device)
            print(f"[{device}] ae_lab ...", flush=True)
            runs["ae_lab"] = timed_ae_lab(f"{device}_ae_lab", [], args, accel, work)
            for v in chosen:
                print(f"[{device}] ae_lab {v} ...", flush=True)
                runs[f"ae_lab {v}"] = timed_ae_lab(f"{device}_{v}", variants[v], args, accel, work)
            for r in runs.values():
                if "epoch_s" in r:
                    r["rate"], r["epoch"] = steady(r["epoch_s"], r["samples"])
            results["loops"][device] = runs
        print("reading MNIST, fitting PCA ...", flush=True)
        results["read"] = read_times(args.data_root)
        results["pca_fit_60k_s"] = pca_time(args.data_root)
        if not args.no_sweep:
            print("sweep, sequential ...", flush=True)
            results["sweeps"] = {"sequential": sweep(args, work, parallel=False)}
            print("sweep, parallel ...", flush=True)
            results["sweeps"]["parallel"] = sweep(args, work, parallel=True)
    section = report(args, results, (load_before, os.getloadavg()[0]))
    print("\n" + section)
    print(json.dumps(results, indent=1, default=str), file=sys.stderr)
    if not args.no_doc:
        args.doc.parent.mkdir(parents=True, exist_ok=True)
        write_doc(section, args.doc)
        print(f"written to {args.doc}")


if __name__ == "__main__":
    main()
