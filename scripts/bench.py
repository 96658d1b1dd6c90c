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

This file runs the benchmark; its parts: ``bench_env`` (this checkout, the launch environment,
the hardware), ``bench_loops`` (the reference loops), ``bench_runs`` (ae_lab's runs, timed),
``bench_stats`` (rates and ratios), ``bench_doc`` (the section of ``docs/benchmarks.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from bench_doc import report, write_doc
from bench_env import REPO
from bench_loops import classic_loop, plain_loop
from bench_runs import answer_times, pca_time, read_times, sweep, timed_ae_lab
from bench_stats import pool, pooled_rounds, summarise


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
