"""The results page: the report presets reproduced, from their finished sweeps.

``python -m scripts.results <sweep dir> [<sweep dir> ...]`` (``make results``) writes
``docs/results.md`` and its figures under ``docs/figures/``. Each sweep is a run of a report preset
(``experiment=report_course``, ...), and its section shows what the preset declares under ``report``
(conf/experiment/report_*.yaml): its title, the published figures next to ae_lab's, and its figures
(``scripts/results_figures.py``); then every job's headline metrics and timings
(``ae_lab.reporting.metrics``). Every number and picture comes from the sweep directories; a figure
whose jobs have not finished is listed as missing, and so is a report preset no sweep was given for.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ae_lab.core.errors import AeLabError, exit_with
from ae_lab.core.hardware import cpu_name
from ae_lab.reporting import formatting, groups, metrics, tables, verdicts
from scripts import results_figures as figures
from scripts import results_novelty as novelty
from scripts.results_sweep import Sweep, presets


class Page:
    """Collects the markdown and writes the figures next to it; records what is missing."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.fig_dir = out_dir / "figures"
        self.fig_dir.mkdir(parents=True, exist_ok=True)
        self.parts: list[str] = []
        self.missing: list[str] = []

    def add(self, *lines: str) -> None:
        self.parts.extend(lines)

    def figure(self, spec: Mapping[str, Any], sweep: Sweep) -> None:
        """A declared figure, drawn from ``sweep``, or a line that says why it is missing."""
        path, caption = self.fig_dir / spec["file"], spec["caption"]
        if figures.draw(spec, sweep, path):
            self.add(f"![{caption}](figures/{spec['file']})", "", f"*{caption}*", "")
            if spec.get("metrics"):
                self.add(figure_metrics(spec, sweep), "")
        else:
            path.unlink(missing_ok=True)
            why = figures.why_missing(spec)
            self.missing.append(f"{caption}: {why}")
            self.add(f"*Missing: {caption} ({why}).*", "")


def figure_metrics(spec: Mapping[str, Any], sweep: Sweep) -> str:
    """The numbers a figure's spec names (``metrics``) for its job, mean ± std over its seeds,
    each with what it is (``ae_lab.reporting.metrics``): sample quality beside a sample grid."""
    group = sweep.group(spec["job"]) or {}
    cells = []
    for name in spec["metrics"]:
        metric = metrics.find(name)
        what = f" ({metric.label})" if metric else ""
        cells.append(f"`{name}` {formatting.fmt(group.get(name), name) or 'not measured'}{what}")
    n = group.get("n") or 0
    return f"{spec['job']}, over {n} seed{'s' if n != 1 else ''}: " + "; ".join(cells) + "."


def comparison_table(sweep: Sweep) -> str:
    lines = [
        "| figure | published | ae_lab (mean ± std) | seeds | ae_lab / published | beaten | job |",
        "|---|---|---|---|---|---|---|",
    ]
    notes = []
    for c in verdicts.compare(sweep.groups, sweep.declared.get("reference") or []):
        name, published = c["metric"], c["published"]
        if c["ours"] is None:
            ours, n, ratio, beaten = "missing (job not finished)", "", "", ""
        else:
            ours = formatting.fmt(groups.Stat(c["ours"], c["std"], c["n"]), name)
            n, ratio, beaten = str(c["n"]), f"{c['ratio']:.3f}", c["beaten"]
        mark = ""
        if c.get("note"):
            notes.append(c["note"])
            mark = f" [{len(notes)}]"
        lines.append(
            f"| {c['what']} (`{name}`) | {formatting.fmt(published, name)}{mark} | {ours} | {n} | "
            f"{ratio} | {beaten} | {c['run']} |"
        )
    lines += ["", verdicts.BEATEN_RULE]
    lines += [f"\n[{i}] {note}" for i, note in enumerate(notes, 1)]
    return "\n".join(lines)


def seeds_line(sweep: Sweep) -> str:
    """How many seeds each preset job ran, as the sweep's runs say (not as configured)."""
    by_n: dict[int, list[str]] = {}
    for g in sweep.groups:
        if g.get("report_job"):
            by_n.setdefault(g["completed"], []).append(g["report_job"])
    if not by_n:
        return ""
    most = max(by_n, key=lambda n: len(by_n[n]))
    parts = [f"{most} seed{'s' if most != 1 else ''} per job"]
    parts += [f"{', '.join(jobs)}: {n}" for n, jobs in sorted(by_n.items()) if n != most]
    return "Finished seeds: " + "; ".join(parts) + "."


def sweep_section(page: Page, sweep: Sweep) -> None:
    done = sum(r["status"] == "completed" for r in sweep.rows)
    shown = ("report_job", "status", "n", "latent", *metrics.shown_in(metrics.RESULTS))
    grouped = sweep.groups
    columns = [c for c in shown if any(g.get(c) not in (None, "") for g in grouped)]
    averaged = ", ".join(f"`{k}`" for k in sweep.average_over)
    page.add(
        f"## {sweep.title}",
        "",
        f"Command: `{sweep.command()}` (sweep `{sweep.path.name}`, {done} of {len(sweep.rows)} "
        f"runs completed, {sweep.launch()}). " + seeds_line(sweep),
        "",
        comparison_table(sweep),
        "",
        f"Every job: mean ± sample standard deviation (ddof=1) over its n runs that differ only "
        f"in {averaged} (times in seconds; `time/epoch_s` includes validation; each run's own "
        f"numbers: `jobs.csv` in the sweep dir):",
        "",
        tables.markdown_table(grouped, columns),
        "",
    )
    if sweep.declared.get("figures"):
        page.add("### Figures", "")
        for spec in sweep.declared["figures"]:
            page.figure(spec, sweep)


def machine() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    versions = f"Python {platform.python_version()}, torch {torch.__version__}"
    return f"{cpu_name()}, {os.cpu_count()} cores, {gpu}; {versions}"


def write_page(sweep_dirs: Sequence[Path], out_dir: Path) -> Path:
    """Writes ``<out_dir>/results.md`` and ``<out_dir>/figures/*.png``; returns the page's path."""
    sweeps = [Sweep.load(p) for p in sweep_dirs]
    absent = {k: v for k, v in presets().items() if k not in {s.preset for s in sweeps}}
    wrong = [
        f"{s.path}: figure {i + 1} ({spec.get('file')}): {problem}"
        for s in sweeps
        for i, spec in enumerate(s.declared.get("figures") or [])
        if (problem := figures.check(spec))
    ]
    if wrong:
        raise ValueError("report.figures: " + "; ".join(wrong))
    page = Page(out_dir)
    for declared in (*(s.declared for s in sweeps), *absent.values()):
        for spec in declared.get("figures") or []:
            (page.fig_dir / spec["file"]).unlink(missing_ok=True)
    page.add(
        "# Results: the reference reports, reproduced",
        "",
        f"Generated by `python -m scripts.results {' '.join(map(str, sweep_dirs))}` from the "
        f"sweeps named below on {dt.date.today().isoformat()}; do not edit by hand (`make "
        "results` reruns every report and regenerates this page).",
        "",
        f"Machine: {machine()}.",
        "",
        "Every figure is per-pixel MSE on the official 10k test set with pixels in [0, 1], or "
        "accuracy on the same images, unless it says otherwise. Each report's jobs run over "
        "several seeds (each section says how many finished per job); a figure is their mean ± "
        "sample standard deviation (ddof=1) with n, and its verdict against the published value "
        "takes that spread into account (the rule is under each table). How `make results` runs "
        "them within its time budget (two jobs at a time, longest first; the jobs cut short for "
        'it): README.md, "Reproducing the reference reports".',
        "",
    )
    for sweep in sweeps:
        if sweep.declared.get("novelty"):  # the novelty study: a table per digit left out
            lines, gone = novelty.section(sweep)
            page.add(*lines)
            page.missing.extend(gone)
        else:
            sweep_section(page, sweep)
    for declared in absent.values():
        page.missing.append(f"{declared['title']}: no sweep given")
        page.add(f"## {declared['title']}", "", "*Missing: no sweep was given for this report.*")
        page.add("")
    if page.missing:
        page.add("## Missing", "", *[f"- {m}" for m in page.missing], "")
    out = out_dir / "results.md"
    out.write_text("\n".join(page.parts).rstrip() + "\n")
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.results",
        description="Write docs/results.md and docs/figures/ from report presets' sweeps.",
    )
    parser.add_argument("sweeps", nargs="*", type=Path, help="sweep dirs of experiment=report_*")
    parser.add_argument("--out", type=Path, default=Path("docs"), help="default: docs")
    args = parser.parse_args(argv)
    for path in args.sweeps:
        if not path.is_dir():
            parser.error(f"{path} is not a directory")
    try:
        print(f"wrote {write_page(args.sweeps, args.out)}")
    except ValueError as err:
        parser.error(str(err))
    except AeLabError as err:  # a sweep folder of an older ae_lab: how to regenerate it
        exit_with(str(err), err.exit_code)


if __name__ == "__main__":
    main()
