"""A sweep's tables: ``jobs.csv`` (one line per job), ``summary.csv`` (one line per group of
jobs, ``ae_lab.reporting.groups``) and ``summary.md`` (the groups' table, the jobs' table, the
published figures beside ae_lab's, the failures), every number written by
``ae_lab.reporting.formatting``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from io import StringIO
from pathlib import Path
from typing import Any

from ae_lab.core import records
from ae_lab.core.records import atomic_write
from ae_lab.reporting import formatting, groups, verdicts
from ae_lab.reporting import metrics as headline


def _columns(rows: Sequence[dict[str, Any]], head: Sequence[str], tail: Sequence[str]) -> list[str]:
    """``head``, every other key, then ``tail``; a column no row has a value in is left out."""
    rest = sorted({k for r in rows for k in r} - set(head) - set(tail))
    columns = [*head, *rest, *tail]
    return [c for c in columns if any(r.get(c) not in (None, "") for r in rows)]


def _write_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], path: Path) -> None:
    buf = StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows({c: formatting.csv_value(r.get(c)) for c in columns} for r in rows)
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
    cells = {c: formatting.fmt_column([r.get(c) for r in rows], c) for c in columns}
    for c in columns:
        for i, r in enumerate(rows):
            stat = r.get(c)
            if isinstance(stat, groups.Stat) and stat.n != r.get("completed", stat.n):
                cells[c][i] += f" (n={stat.n})"
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cells[c][i] for c in columns) + " |" for i in range(len(rows))]
    return "\n".join(lines)


def reference_table(
    group_rows: Sequence[dict[str, Any]], reference: Iterable[dict[str, Any]]
) -> str:
    """ae_lab's figures (mean ± std over n) next to published ones, with their ratio (below 1:
    lower than published, better for an MSE, worse for an accuracy) and the verdict."""
    lines = [
        "| what | metric | published | ae_lab | n | ae_lab / published | beaten | run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in verdicts.compare(group_rows, reference):
        stat = groups.Stat(c["ours"], c["std"], c["n"]) if c["ours"] is not None else None
        ours = "not measured" if stat is None else formatting.fmt(stat, c["metric"])
        ratio = "" if c["ratio"] is None else f"{c['ratio']:.3f}"
        what = c["what"] + (f" ({c['note']})" if c.get("note") else "")
        lines.append(
            f"| {what} | {c['metric']} | {formatting.fmt(c['published'], c['metric'])} | {ours} | "
            f"{c['n'] or ''} | {ratio} | {c.get('beaten', '')} | {formatting.fmt(c['run'])} |"
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
        parts += ["", verdicts.BEATEN_RULE]
    if seeded:
        job_columns = ["overrides", "status", "latent", *metrics]
        parts += ["", "## Every job", "", markdown_table(_split_common(rows)[1], job_columns)]
    failed = [r for r in rows if r.get("error") and r["status"] != records.PRUNED]
    if failed:
        parts += ["", "## Failures", ""]
        parts += [f"- `{r['overrides'] or r['job']}`: {r['error']}" for r in failed]
    atomic_write(path, "\n".join(parts) + "\n")
