"""Sweep summaries: one row per job with its overrides, status and final metrics, beside PCA at
the same bottleneck size, plus test MSE against latent size for every model.

Rebuild them for any finished or partly finished sweep with
``python -m ae_lab.reporting.report <sweep dir>``.
"""

from __future__ import annotations

import argparse
import csv
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from ae_lab.core import records
from ae_lab.core.records import atomic_write
from ae_lab.reporting import groups
from ae_lab.reporting import metrics as headline
from ae_lab.reporting.metrics import fmt


def job_dirs(sweep_dir: Path) -> list[Path]:
    """Job directories of a sweep: those Hydra wrote a ``.hydra/`` folder into."""
    return sorted(p.parent.parent for p in sweep_dir.glob("**/.hydra/overrides.yaml"))


def load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None


def job_row(job_dir: Path, sweep_dir: Path) -> dict[str, Any]:
    """What one job did: overrides, status (completed / failed / incomplete), settings, metrics."""
    metrics = headline.with_ratio(records.read_metrics(job_dir))
    found, odd = records.inspect(job_dir)
    # no record: a job of an older version, or one stopped before it began; a record that
    # cannot be trusted: its job is not known to have completed
    record = found or records.JobRecord("completed" if metrics and not odd else "incomplete")
    if found is not None and not records.whole_metrics(job_dir):  # metrics.json damaged
        metrics = headline.with_ratio(record.metrics or {})
        if not metrics and record.status == records.COMPLETED:
            record.status = "incomplete"  # not every phase is on disk: a re-run completes it
    overrides = load_yaml(job_dir / ".hydra" / "overrides.yaml") or []
    hydra_cfg = (load_yaml(job_dir / ".hydra" / "hydra.yaml") or {}).get("hydra", {})
    config = load_yaml(job_dir / ".hydra" / "config.yaml") or {}
    choices = hydra_cfg.get("runtime", {}).get("choices", {})
    row: dict[str, Any] = {
        "job": str(job_dir.relative_to(sweep_dir)),
        "overrides": " ".join(record.overrides or overrides),
        # a record that says running belongs to a job that runs now or was stopped
        "status": "incomplete" if record.status == records.RUNNING else record.status,
        "model": record.model or choices.get("model"),
        "transform": record.transform or choices.get("transform"),
        # the preset's job (experiment=report_course: course/deep_ae_64, ...), if any
        "report_job": choices.get("report_job"),
        # the model's bottleneck as its record says (None: it has none, as the classifier)
        "latent": found.latent if found is not None else config.get("latent"),
    }
    row.update(metrics)
    if "time/wall_s" not in metrics and record.wall_s is not None:
        row["time/wall_s"] = record.wall_s
    if record.error:
        row["error"] = record.error
    return row


def collect(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """Every job's row, in numeric order of the overrides (``latent=2`` before ``latent=32``)."""
    sweep_dir = Path(sweep_dir)
    return list(groups.sort_jobs(job_row(d, sweep_dir) for d in job_dirs(sweep_dir)))


def _columns(rows: Sequence[dict[str, Any]], head: Sequence[str], tail: Sequence[str]) -> list[str]:
    """``head``, every other key, then ``tail``; a column no row has a value in is left out."""
    rest = sorted({k for r in rows for k in r} - set(head) - set(tail))
    columns = [*head, *rest, *tail]
    return [c for c in columns if any(r.get(c) not in (None, "") for r in rows)]


def _write_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], path: Path) -> None:
    from io import StringIO

    buf = StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows({c: headline.csv_value(r.get(c)) for c in columns} for r in rows)
    atomic_write(path, buf.getvalue())


def write_jobs_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """One line per job, every metric as that job logged it."""
    head = ["job", "overrides", "status", "model", "transform", "latent"]
    _write_table(rows, _columns(rows, head, ["error"]), path)


def flat_group(group: dict[str, Any]) -> dict[str, Any]:
    """A group row for a CSV: each metric as ``<metric>`` (the mean), ``<metric>:std`` and
    ``<metric>:n``."""
    out = {k: v for k, v in group.items() if not isinstance(v, groups.Stat)}
    for name, stat in groups.stats(group).items():
        out |= {name: stat.mean, f"{name}:std": stat.std, f"{name}:n": stat.n}
    return out


def write_csv(group_rows: Sequence[dict[str, Any]], path: Path) -> None:
    """One line per group: mean, sample std (ddof=1) and n of every metric. A ``:n`` column is
    written only where some metric has fewer values than its group has completed jobs."""
    flat = [flat_group(g) for g in group_rows]
    head = ["overrides", "status", "n", "completed", "averaged", "model", "transform"]
    columns = _columns(flat, [*head, "report_job", "latent"], ["job", "error"])
    columns = [
        c
        for c in columns
        if not c.endswith(":n") or any(r.get(c) not in (None, r["completed"]) for r in flat)
    ]
    _write_table(flat, columns, path)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Rows of jobs or of groups (a ``Stat``: ``mean ± std``, and ``(n=k)`` where fewer of the
    group's completed jobs have it); one number format per column."""
    cells = {c: headline.fmt_column([r.get(c) for r in rows], c) for c in columns}
    for c in columns:
        for i, r in enumerate(rows):
            stat = r.get(c)
            if isinstance(stat, groups.Stat) and stat.n != r.get("completed", stat.n):
                cells[c][i] += f" (n={stat.n})"
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cells[c][i] for c in columns) + " |" for i in range(len(rows))]
    return "\n".join(lines)


def compare(
    group_rows: Sequence[dict[str, Any]], reference: Iterable[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One line per published figure and group that measured it: ``what``, ``metric``,
    ``published``, ``ours`` (the mean; None when no job has it yet), ``std``, ``n``, ``ratio``
    (ours / published), ``beaten`` (``metrics.BEATEN_RULE``), ``run`` and the reference's
    ``note``. A reference with a ``job`` only matches that preset job (``report_job``); without
    one, every group."""
    lines = []
    for ref in reference:
        metric, published = ref["metric"], float(ref["value"])
        matching = [
            g
            for g in group_rows
            if isinstance(g.get(metric), groups.Stat)
            and ref.get("job") in (None, g.get("report_job"))
        ]
        base = {
            "what": ref.get("what", ""),
            "metric": metric,
            "published": published,
            "note": ref.get("note"),
        }
        if not matching:
            run = ref.get("job", "")
            lines.append({**base, "ours": None, "std": None, "n": 0, "ratio": None, "run": run})
        for g in matching:
            stat: groups.Stat = g[metric]
            run = g.get("report_job") or g["overrides"] or g["job"]
            verdict = headline.beaten(metric, stat.mean, published, stat.std, stat.n)
            lines.append(
                {
                    **base,
                    **{"ours": stat.mean, "std": stat.std, "n": stat.n, "run": run},
                    **{"ratio": stat.mean / published, "beaten": verdict},
                }
            )
    return lines


def reference_table(
    group_rows: Sequence[dict[str, Any]], reference: Iterable[dict[str, Any]]
) -> str:
    """ae_lab's figures (mean ± std over n) next to published ones, with their ratio (below 1:
    lower than published, better for an MSE, worse for an accuracy) and the verdict."""
    lines = [
        "| what | metric | published | ae_lab | n | ae_lab / published | beaten | run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in compare(group_rows, reference):
        stat = groups.Stat(c["ours"], c["std"], c["n"]) if c["ours"] is not None else None
        ours = "not measured" if stat is None else headline.fmt(stat, c["metric"])
        ratio = "" if c["ratio"] is None else f"{c['ratio']:.3f}"
        what = c["what"] + (f" ({c['note']})" if c.get("note") else "")
        lines.append(
            f"| {what} | {c['metric']} | {headline.fmt(c['published'], c['metric'])} | {ours} | "
            f"{c['n'] or ''} | {ratio} | {c.get('beaten', '')} | {fmt(c['run'])} |"
        )
    return "\n".join(lines)


def _split_common(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Overrides every job shares, and the rows with only what tells them apart."""
    split = [r["overrides"].split() for r in rows]
    common = [o for o in split[0] if all(o in s for s in split[1:])] if len(rows) > 1 else []
    slim = [
        {**r, "overrides": " ".join(o for o in s if o not in common) or r["job"]}
        for r, s in zip(rows, split, strict=True)
    ]
    return common, slim


def write_markdown(
    rows: Sequence[dict[str, Any]],
    path: Path,
    reference: Sequence[dict[str, Any]] = (),
    average_over: Sequence[str] = groups.AVERAGE_OVER,
) -> None:
    """The groups' table (mean ± std over n, one row per group), the jobs' table when a group
    has more than one job, the reference figures and the failures."""
    grouped = groups.group_rows(rows, average_over)
    shown = headline.shown_in(headline.SUMMARY)
    metrics = [c for c in shown if any(r.get(c) is not None for r in rows)]
    seeded = any(g["n"] > 1 for g in grouped)
    columns = ["overrides", "status", *(["n"] if seeded else []), "latent", *metrics]
    columns = [c for c in columns if any(g.get(c) not in (None, "") for g in grouped)]
    done = sum(r["status"] == "completed" for r in rows)
    # stopped early by an Optuna search's pruner: neither a result nor a failure
    pruned = sum(r["status"] == records.PRUNED for r in rows)
    common, slim = _split_common(grouped)
    parts = [
        f"# Sweep summary: {path.parent}",
        "",
        f"{len(rows)} jobs: {done} completed, {f'{pruned} pruned, ' if pruned else ''}"
        f"{len(rows) - done - pruned} failed or incomplete. "
        f"{headline.RATIO} = {headline.find(headline.RATIO).label}.",
        "",
    ]
    if seeded:
        parts += [
            f"Jobs that differ only in {', '.join(f'`{k}`' for k in average_over)} form one row: "
            "mean ± sample standard deviation (ddof=1) over its n completed jobs (summary.csv: "
            "`<metric>`, `<metric>:std`, `<metric>:n`; every job: jobs.csv and the table below).",
            "",
        ]
    if common:
        parts += [f"Overrides of every job: `{' '.join(common)}`", ""]
    parts.append(markdown_table(slim, columns))
    if reference:
        parts += ["", "## Next to the reference figures", "", reference_table(grouped, reference)]
        parts += ["", headline.BEATEN_RULE]
    if seeded:
        job_columns = ["overrides", "status", "latent", *metrics]
        parts += ["", "## Every job", "", markdown_table(_split_common(rows)[1], job_columns)]
    failed = [r for r in rows if r.get("error") and r["status"] != records.PRUNED]
    if failed:
        parts += ["", "## Failures", ""]
        parts += [f"- `{r['overrides'] or r['job']}`: {r['error']}" for r in failed]
    atomic_write(path, "\n".join(parts) + "\n")


def plot_mse_vs_latent(
    rows: Sequence[dict[str, Any]], path: Path, average_over: Sequence[str] = groups.AVERAGE_OVER
) -> bool:
    """Test MSE against latent size, one line per model and transform, PCA dashed; log y. Each
    point is a group's mean (``groups.group_rows``), its error bar the sample std over the
    group's jobs. Returns False (and writes nothing) when no completed job has both a latent
    and a test MSE."""
    from matplotlib.figure import Figure

    grouped = groups.group_rows(rows, average_over)
    points = [
        g
        for g in grouped
        if groups.is_number(g.get("latent")) and isinstance(g.get("test/mse"), groups.Stat)
    ]
    if not points:
        return False
    fig = Figure(figsize=(7, 4.5), dpi=110)
    ax = fig.subplots()
    lines: dict[str, dict[int, list[groups.Stat]]] = {}
    for g in points:
        transform = g.get("transform") or "none"
        label = f"{g.get('model') or '?'}" + ("" if transform == "none" else f" ({transform})")
        lines.setdefault(label, {}).setdefault(g["latent"], []).append(g["test/mse"])
        if isinstance(g.get("pca/test_mse"), groups.Stat):
            pca = "PCA" + ("" if transform == "none" else f" ({transform})")
            lines.setdefault(pca, {}).setdefault(g["latent"], []).append(g["pca/test_mse"])
    for label, by_latent in sorted(lines.items()):
        xs = sorted(by_latent)
        ys, errs = zip(*(_pooled(by_latent[x]) for x in xs), strict=True)
        style = {"fmt": "k--", "marker": "x", "alpha": 0.7} if label.startswith("PCA") else {}
        ax.errorbar(xs, ys, yerr=errs, capsize=3, label=label, **({"fmt": "o-"} | style))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("latent size (PCA: components)")
    ax.set_ylabel("test MSE" + (" (error bars: std over seeds)" if _any_spread(points) else ""))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    fig.savefig(tmp)
    os.replace(tmp, path)
    return True


def _pooled(stats: Sequence[groups.Stat]) -> tuple[float, float]:
    """One point for the groups at one latent size: their mean, and the std when there is one
    group (several groups there differ in more than the latent: their means are averaged)."""
    if len(stats) == 1:
        return stats[0].mean, stats[0].std or 0.0
    return sum(s.mean for s in stats) / len(stats), 0.0


def _any_spread(points: Sequence[dict[str, Any]]) -> bool:
    return any(g["test/mse"].std is not None for g in points)


def declared(config: dict[str, Any] | None) -> dict[str, Any]:
    """What a sweep's config declares for its reports (``report``: reference figures, and the
    results page's title and figures); a sweep of an older ae_lab named its reference figures in
    ``hydra.callbacks.<callback>.reference``."""
    config = config or {}
    if config.get("report"):
        return dict(config["report"])
    callbacks = (config.get("hydra") or {}).get("callbacks") or {}
    old = [c["reference"] for c in callbacks.values() if isinstance(c, dict) and c.get("reference")]
    return {"reference": list(old[0])} if old else {}


def sweep_reference(sweep_dir: Path) -> list[dict[str, Any]]:
    """Reference figures the config of the sweep in ``sweep_dir`` names."""
    return list(declared(load_yaml(sweep_dir / "multirun.yaml")).get("reference") or [])


def sweep_average_over(sweep_dir: Path) -> tuple[str, ...]:
    """The keys the sweep's report averages over (``report.average_over``; default: seed)."""
    keys = declared(load_yaml(sweep_dir / "multirun.yaml")).get("average_over")
    return tuple(keys) if keys else groups.AVERAGE_OVER


def summarize(
    sweep_dir: str | Path,
    reference: Sequence[dict[str, Any]] | None = None,
    average_over: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Writes ``summary.csv`` (one line per group), ``jobs.csv`` (one per job), ``summary.md``
    and ``mse_vs_latent.png`` into the sweep dir; returns the job rows."""
    sweep_dir = Path(sweep_dir)
    rows = collect(sweep_dir)
    if reference is None:
        reference = sweep_reference(sweep_dir)
    if average_over is None:
        average_over = sweep_average_over(sweep_dir)
    write_csv(groups.group_rows(rows, average_over), sweep_dir / "summary.csv")
    write_jobs_csv(rows, sweep_dir / "jobs.csv")
    write_markdown(rows, sweep_dir / "summary.md", reference, average_over)
    plot_mse_vs_latent(rows, sweep_dir / "mse_vs_latent.png", average_over)
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
        rows = summarize(sweep_dir, average_over=args.average_over)
        if not rows:
            print(f"{sweep_dir}: no jobs found (no */.hydra/overrides.yaml)")
            continue
        print((sweep_dir / "summary.md").read_text())


if __name__ == "__main__":
    main()
