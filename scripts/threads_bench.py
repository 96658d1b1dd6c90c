"""``make bench-threads``: which torch thread count a run should take, idle and beside other work.

Times a training epoch of the default run (``model=ae``: dense AE 784-128-32, batch 128) and of
the convolutional VAE (``model=conv_vae``) with ``threads=1``, ``threads=2``, torch's own default
(one thread per core: ``threads=<that count>``, which caps torch and BLAS as torch's default does)
and ae_lab's default (``threads`` unset: the cores free to the run, ``ae_lab.core.hardware``), each
once on the machine as it is ("idle") and once with one busy-loop process beside it ("other core
busy"), in the same order for both. The busy loop starts ``--warmup`` seconds before its runs, so
that the 1-minute load average ae_lab's default reads has seen it. Epoch times count training
batches only (validation excluded) and, with several epochs, the epochs after the first.

It prints a table and prepends it, with the date, the hardware and the load, to
``docs/benchmarks.md``. Run it on an otherwise quiet machine: other users' load falls on every row
differently. ``--batches 20 --epochs 1 --warmup 5 --no-doc`` checks that it works in a minute or
two; the figures need the defaults (several minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from statistics import mean
from typing import Any

import torch
from bench_doc import write_doc
from bench_env import REPO, hardware
from bench_runs import ae_lab
from bench_stats import steady_part

MODELS = {
    "ae": "the default run (dense AE 784-128-32)",
    "conv_vae": "the convolutional VAE",
}


@contextlib.contextmanager
def busy_core() -> Iterator[None]:
    """One process spinning on a core for as long as the block runs (the "other job")."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        spinner.kill()
        spinner.wait()


def epoch(model: str, threads: int | None, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """One run of ``model`` with ``threads`` (None: unset, ae_lab's default); its steady epochs'
    mean time in seconds and the thread count it ran with."""
    name = f"{model}_{threads or 'default'}_{len(list(work.iterdir()))}"
    out = work / f"{name}.json"
    overrides = [
        f"model={model}",
        f"trainer.max_epochs={args.epochs}",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
        "trainer.num_sanity_val_steps=0",
        "trainer.enable_progress_bar=false",
        "logger=none",
        "+callbacks.bench_timer._target_=bench_timer.EpochTimer",
        f"hydra.run.dir={work / name}",
        *([f"trainer.limit_train_batches={args.batches}"] if args.batches else []),
        *([f"threads={threads}"] if threads else []),
    ]
    env = {"BENCH_OUT": str(out)}
    wall, rc = ae_lab(overrides, work, args.data_root, work / f"{name}.log", **env)
    if rc != 0 or not out.exists():
        tail = (work / f"{name}.log").read_text()[-2000:]
        print(f"  {name} failed (exit {rc}):\n{tail}", file=sys.stderr)
        return {"failed": rc or "no timing written"}
    result = json.loads(out.read_text())
    return {
        "epoch_s": mean(steady_part(result["epoch_s"])),
        "threads": result["threads"],
        "load": os.getloadavg()[0],
        "wall_s": wall,
    }


def settings(torch_default: int) -> list[tuple[str, int | None]]:
    """The thread counts compared, by name: torch's default named with its count here."""
    rows: list[tuple[str, int | None]] = [("threads=1", 1), ("threads=2", 2)]
    if torch_default in (1, 2):  # the same run as one above: named there, not run twice
        rows[torch_default - 1] = (f"threads={torch_default} (torch's default here)", torch_default)
    else:
        rows.append((f"torch's default (threads={torch_default})", torch_default))
    rows.append(("ae_lab's default (threads unset)", None))
    return rows


def cell(r: dict[str, Any], named: int | None) -> str:
    if "failed" in r:
        return f"failed ({r['failed']})"
    unit = "thread" if r["threads"] == 1 else "threads"
    chose = f" ({r['threads']} {unit})" if named is None else ""
    return f"{r['epoch_s']:.2f}{chose}"


def report(args: argparse.Namespace, results: dict[str, Any], torch_default: int) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cmd = "python scripts/threads_bench.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    batches = f"{args.batches} training batches" if args.batches else "all training batches"
    lines = [
        f"### {now} (threads)",
        "",
        f"- command: `{cmd.strip()}`",
        f"- hardware: {hardware()}",
        f"- load average (1 min) before/after: {results['load'][0]:.1f} / "
        f"{results['load'][1]:.1f}; torch's default here: {torch_default} threads",
        f"- {args.epochs} epoch(s) of {batches} per run, batch 128; seconds per epoch (training "
        'batches only, epochs after the first when there are several); "other core busy": one '
        f"busy-loop process started {args.warmup:.0f} s before the first of those runs; the "
        "ratio is each row's busy epoch against the best busy epoch of that model",
        "",
        "| run | threads | idle: epoch s | other core busy: epoch s | busy vs best busy |",
        "|---|---|---:|---:|---:|",
    ]
    for model in args.models:
        rows = results["runs"][model]
        busy = [r["busy"]["epoch_s"] for r in rows.values() if "epoch_s" in r["busy"]]
        best = min(busy) if busy else None
        for name, r in rows.items():
            b = r["busy"]
            ratio = f"{b['epoch_s'] / best:.2f}x" if best and "epoch_s" in b else "-"
            lines.append(
                f"| {MODELS[model]} | {name} | {cell(r['idle'], r['named'])} | "
                f"{cell(b, r['named'])} | {ratio} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batches", type=int, default=None, help="limit_train_batches")
    parser.add_argument("--models", default="ae,conv_vae", help=f"of {', '.join(MODELS)}")
    parser.add_argument(
        "--warmup", type=float, default=60.0, help="seconds the busy loop runs before its runs"
    )
    parser.add_argument("--data-root", default=os.environ.get("AE_LAB_DATA_DIR", "data"))
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md")
    parser.add_argument("--no-doc", action="store_true", help="print only")
    args = parser.parse_args()
    args.models = [m for m in args.models.split(",") if m]
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        parser.error(f"--models: {', '.join(unknown)} (allowed: {', '.join(MODELS)})")
    torch_default = torch.get_num_threads()  # nothing in this process has set it
    rows = settings(torch_default)
    results: dict[str, Any] = {"load": [os.getloadavg()[0]], "runs": {}}
    with tempfile.TemporaryDirectory(prefix="ae_lab_threads_") as tmp:
        work = Path(tmp)
        for model in args.models:
            results["runs"][model] = {name: {"named": n} for name, n in rows}
        for phase in ("idle", "busy"):
            with busy_core() if phase == "busy" else contextlib.nullcontext():
                if phase == "busy":
                    print(f"busy loop started; waiting {args.warmup:.0f} s ...", flush=True)
                    subprocess.run(["sleep", str(args.warmup)], check=True)
                for model in args.models:
                    for name, n in rows:
                        print(f"[{phase}] {model}, {name} ...", flush=True)
                        results["runs"][model][name][phase] = epoch(model, n, args, work)
    results["load"].append(os.getloadavg()[0])
    section = report(args, results, torch_default)
    print("\n" + section)
    print(json.dumps(results, indent=1, default=str), file=sys.stderr)
    if not args.no_doc:
        write_doc(section, args.doc)
        print(f"written to {args.doc}")


if __name__ == "__main__":
    main()
