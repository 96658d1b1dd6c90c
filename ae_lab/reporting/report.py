"""Sweep summaries: ``summary.csv``, ``jobs.csv``, ``summary.md`` and ``mse_vs_latent.png`` in a
sweep folder, from its jobs' records: one row per job with its overrides, status and final
metrics, beside PCA at the same bottleneck size, and test MSE against latent size for every model.

The sweep callback (``ae_lab.sweeps.sweep``) rebuilds them after every job; rebuild them for any
finished or partly finished sweep with ``python -m ae_lab.reporting.report <sweep dir>``. Rows
come from ``collect``, groups from ``groups``, tables from ``tables``, the published figures'
verdicts from ``verdicts``, the figure from ``plots``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ae_lab.core.errors import AeLabError, exit_with
from ae_lab.reporting import collect, groups, older, plots, tables


def summarize(
    sweep_dir: str | Path,
    reference: Sequence[dict[str, Any]] | None = None,
    average_over: Sequence[str] | None = None,
    redraw: Callable[[list[dict[str, Any]]], bool] | None = None,
) -> list[dict[str, Any]]:
    """Writes ``summary.csv`` (one line per group), ``jobs.csv`` (one per job), ``summary.md``
    and ``mse_vs_latent.png`` into the sweep dir; returns the job rows. ``reference`` and
    ``average_over`` default to what the sweep's config declares. ``redraw(rows)``: whether to
    draw the figure this time (default: always); the tables are always written."""
    sweep_dir = Path(sweep_dir)
    rows = collect.collect(sweep_dir)
    if reference is None:
        reference = collect.sweep_reference(sweep_dir)
    if average_over is None:
        average_over = collect.sweep_average_over(sweep_dir)
    tables.write_csv(groups.group_rows(rows, average_over), sweep_dir / "summary.csv")
    tables.write_jobs_csv(rows, sweep_dir / "jobs.csv")
    tables.write_markdown(rows, sweep_dir / "summary.md", reference, average_over)
    if redraw is None or redraw(rows):
        plots.plot_mse_vs_latent(rows, sweep_dir / "mse_vs_latent.png", average_over)
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ae_lab.reporting.report",
        description="Rebuild summary.csv, jobs.csv, summary.md and mse_vs_latent.png of a sweep "
        "directory.",
    )
    parser.add_argument(
        "sweep_dirs", nargs="+", type=Path, help="e.g. multirun/2026-11-22/21-49-14"
    )
    parser.add_argument(
        "--average-over",
        nargs="+",
        metavar="KEY",
        help="jobs that differ only in these keys form one group (mean, std, n); default: the "
        "sweep's report.average_over, else seed. E.g. --average-over seed data.exclude_classes",
    )
    args = parser.parse_args(argv)
    for sweep_dir in args.sweep_dirs:
        if not sweep_dir.is_dir():
            parser.error(f"{sweep_dir} is not a directory")
    try:
        for sweep_dir in args.sweep_dirs:
            older.check(sweep_dir)  # before anything is written into any of them
    except AeLabError as err:
        exit_with(str(err), err.exit_code)
    for sweep_dir in args.sweep_dirs:
        rows = summarize(sweep_dir, average_over=args.average_over)
        if not rows:
            print(f"{sweep_dir}: no jobs found (no */.hydra/overrides.yaml)")
            continue
        print((sweep_dir / "summary.md").read_text())


if __name__ == "__main__":
    main()
