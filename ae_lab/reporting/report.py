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

from ae_lab.reporting import metrics as headline
from ae_lab.reporting import records
from ae_lab.reporting.metrics import fmt
from ae_lab.reporting.records import atomic_write


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
    found = records.read(job_dir)
    # no record: a job of an older version, or one stopped before it began
    record = found or records.JobRecord("completed" if metrics else "incomplete")
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
    sweep_dir = Path(sweep_dir)
    return [job_row(d, sweep_dir) for d in job_dirs(sweep_dir)]


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    head = ["job", "overrides", "status", "model", "transform", "latent"]
    extra = sorted({k for r in rows for k in r} - set(head) - {"error"})
    columns = [*head, *extra, "error"]
    from io import StringIO

    buf = StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, buf.getvalue())


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c), c) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def compare(
    rows: Sequence[dict[str, Any]], reference: Iterable[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One line per published figure and job that measured it: ``what``, ``metric``, ``published``,
    ``ours`` (None when no job has it yet), ``ratio`` (ours / published) and ``run``. A reference
    with a ``job`` only matches that preset job (``report_job``); without one, every job."""
    lines = []
    for ref in reference:
        metric, published = ref["metric"], float(ref["value"])
        matching = [
            r
            for r in rows
            if r.get(metric) is not None and ref.get("job") in (None, r.get("report_job"))
        ]
        base = {"what": ref.get("what", ""), "metric": metric, "published": published}
        if not matching:
            lines.append({**base, "ours": None, "ratio": None, "run": ref.get("job", "")})
        for r in matching:
            ours = float(r[metric])
            run = r.get("report_job") or r["overrides"] or r["job"]
            lines.append({**base, "ours": ours, "ratio": ours / published, "run": run})
    return lines


def reference_table(rows: Sequence[dict[str, Any]], reference: Iterable[dict[str, Any]]) -> str:
    """ae_lab's figures next to published ones, with their ratio (below 1: lower than published,
    better for an MSE, worse for an accuracy)."""
    lines = [
        "| what | metric | published | ae_lab | ae_lab / published | run |",
        "|---|---|---|---|---|---|",
    ]
    for c in compare(rows, reference):
        ours = "not measured" if c["ours"] is None else fmt(c["ours"], c["metric"])
        ratio = "" if c["ratio"] is None else f"{c['ratio']:.3f}"
        lines.append(
            f"| {c['what']} | {c['metric']} | {fmt(c['published'], c['metric'])} | {ours} | "
            f"{ratio} | {fmt(c['run'])} |"
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
    rows: Sequence[dict[str, Any]], path: Path, reference: Sequence[dict[str, Any]] = ()
) -> None:
    shown = headline.shown_in(headline.SUMMARY)
    metrics = [c for c in shown if any(r.get(c) is not None for r in rows)]
    columns = ["overrides", "status", "latent", *metrics]
    done = sum(r["status"] == "completed" for r in rows)
    common, rows = _split_common(rows)
    parts = [
        f"# Sweep summary: {path.parent}",
        "",
        f"{len(rows)} jobs: {done} completed, {len(rows) - done} failed or incomplete. "
        f"{headline.RATIO} = {headline.find(headline.RATIO).label}.",
        "",
    ]
    if common:
        parts += [f"Overrides of every job: `{' '.join(common)}`", ""]
    parts.append(markdown_table(rows, columns))
    if reference:
        parts += ["", "## Next to the reference figures", "", reference_table(rows, reference)]
    failed = [r for r in rows if r.get("error")]
    if failed:
        parts += ["", "## Failures", ""]
        parts += [f"- `{r['overrides'] or r['job']}`: {r['error']}" for r in failed]
    atomic_write(path, "\n".join(parts) + "\n")


def plot_mse_vs_latent(rows: Sequence[dict[str, Any]], path: Path) -> bool:
    """Test MSE against latent size, one line per model and transform, PCA dashed; log y.
    Returns False (and writes nothing) when no completed job has both a latent and a test MSE."""
    from matplotlib.figure import Figure

    points = [r for r in rows if r.get("latent") and r.get("test/mse") is not None]
    if not points:
        return False
    fig = Figure(figsize=(7, 4.5), dpi=110)
    ax = fig.subplots()
    groups: dict[str, dict[int, list[float]]] = {}
    pca: dict[str, dict[int, list[float]]] = {}
    for r in points:
        transform = r.get("transform") or "none"
        label = f"{r.get('model') or '?'}" + ("" if transform == "none" else f" ({transform})")
        groups.setdefault(label, {}).setdefault(r["latent"], []).append(r["test/mse"])
        if r.get("pca/test_mse") is not None:
            pca.setdefault(transform, {}).setdefault(r["latent"], []).append(r["pca/test_mse"])
    for label, by_latent in sorted(groups.items()):
        xs = sorted(by_latent)
        ax.plot(xs, [sum(by_latent[x]) / len(by_latent[x]) for x in xs], "o-", label=label)
    for transform, by_latent in sorted(pca.items()):
        xs = sorted(by_latent)
        ys = [sum(by_latent[x]) / len(by_latent[x]) for x in xs]
        label = "PCA" + ("" if transform == "none" else f" ({transform})")
        ax.plot(xs, ys, "k--", marker="x", alpha=0.7, label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("latent size (PCA: components)")
    ax.set_ylabel("test MSE")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    fig.savefig(tmp)
    os.replace(tmp, path)
    return True


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


def summarize(
    sweep_dir: str | Path, reference: Sequence[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Writes ``summary.csv``, ``summary.md`` and ``mse_vs_latent.png`` into the sweep dir."""
    sweep_dir = Path(sweep_dir)
    rows = collect(sweep_dir)
    if reference is None:
        reference = sweep_reference(sweep_dir)
    write_csv(rows, sweep_dir / "summary.csv")
    write_markdown(rows, sweep_dir / "summary.md", reference)
    plot_mse_vs_latent(rows, sweep_dir / "mse_vs_latent.png")
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ae_lab.reporting.report",
        description="Rebuild summary.csv, summary.md and mse_vs_latent.png of a sweep directory.",
    )
    parser.add_argument(
        "sweep_dirs", nargs="+", type=Path, help="e.g. multirun/2026-11-22/21-49-14"
    )
    args = parser.parse_args(argv)
    for sweep_dir in args.sweep_dirs:
        if not sweep_dir.is_dir():
            parser.error(f"{sweep_dir} is not a directory")
        rows = summarize(sweep_dir)
        if not rows:
            print(f"{sweep_dir}: no jobs found (no */.hydra/overrides.yaml)")
            continue
        print((sweep_dir / "summary.md").read_text())


if __name__ == "__main__":
    main()
