"""The benchmark's section of ``docs/benchmarks.md``: the table of speeds and ratios with the
date, command, hardware and load, inserted newest first below ``RESULTS_MARK``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import sys
from pathlib import Path
from statistics import median
from typing import Any

import torch
from bench_env import hardware

RESULTS_MARK = "<!-- bench:results (newest first; scripts/bench.py inserts below) -->"


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
