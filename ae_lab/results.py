"""The results page: both reference reports reproduced, from their finished sweeps.

``python -m ae_lab.results --course <sweep dir> --auth <sweep dir>`` writes ``docs/results.md``
and its figures under ``docs/figures/``: each report's published figures next to ae_lab's, every
job's figures and timings, learning curves, the latent-size and masking comparisons, per-digit MSE,
t-SNE maps, reconstructions and samples from the VAEs' prior. Every number and picture comes from
the sweep directories; a figure whose job has not finished is listed as missing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ae_lab import metrics, records, report
from ae_lab.hardware import cpu_name

FIGURE_WIDTH = 720  # pixels; copied run figures are shrunk to this so docs/figures stays small
JOB_COLUMNS = ("report_job", "status", "latent", *metrics.shown_in(metrics.RESULTS))


@dataclass
class Sweep:
    """One report's finished (or partly finished) sweep, as the page reads it."""

    title: str
    slug: str
    path: Path
    rows: list[dict[str, Any]]
    reference: list[dict[str, Any]]

    @classmethod
    def load(cls, title: str, slug: str, path: Path) -> Sweep:
        return cls(title, slug, path, report.collect(path), report.sweep_reference(path))

    def job(self, name: str) -> dict[str, Any] | None:
        """The row of preset job ``name`` (``course/deep_ae_64``), if it finished: a running or
        failed job's curves and figures stay off the page."""
        return next(
            (r for r in self.rows if r.get("report_job") == name and r["status"] == "completed"),
            None,
        )

    def run_dir(self, name: str) -> Path | None:
        row = self.job(name)
        return self.path / row["job"] if row else None

    def command(self) -> str:
        """The command line that ran the sweep, from Hydra's record of it."""
        cfg = report.load_yaml(self.path / "multirun.yaml") or {}
        task = ((cfg.get("hydra") or {}).get("overrides") or {}).get("task") or []
        return " ".join(["python -m ae_lab", *task])

    def wall_minutes(self) -> float | None:
        """Minutes from the first job's start to the last job's end (file times: Hydra writes a
        job's ``.hydra/`` as it starts, ae_lab its status file as it ends)."""
        starts = [p.stat().st_mtime for p in self.path.glob("*/.hydra/config.yaml")]
        ends = [p.stat().st_mtime for p in self.path.glob(f"*/{records.JOB_FILE}")]
        if not starts or not ends:
            return None
        return (max(ends) - min(starts)) / 60


def read_scalars(run_dir: Path, tags: Sequence[str]) -> dict[str, list[tuple[int, float]]]:
    """Per-epoch values of ``tags`` from a run's TensorBoard event files, as (epoch, value)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[tuple[int, float]]] = {}
    for events in sorted(run_dir.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        epochs = (
            {e.step: e.value for e in acc.Scalars("epoch")}
            if "epoch" in acc.Tags()["scalars"]
            else {}
        )
        for tag in set(tags) & set(acc.Tags()["scalars"]):
            out.setdefault(tag, []).extend(
                (int(epochs.get(e.step, i)) + 1, e.value) for i, e in enumerate(acc.Scalars(tag))
            )
    return out


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

    def image(
        self, name: str, caption: str, make: Callable[[Path], bool], why_missing: str
    ) -> None:
        """``make(path)`` draws or copies the figure and says whether it could."""
        path = self.fig_dir / name
        if make(path):
            self.add(f"![{caption}](figures/{name})", "", f"*{caption}*", "")
        else:
            path.unlink(missing_ok=True)
            self.missing.append(f"{caption}: {why_missing}")
            self.add(f"*Missing: {caption} ({why_missing}).*", "")

    def run_figure(self, sweep: Sweep, job: str, figure: str, name: str, caption: str) -> None:
        """A figure that ``job`` saved in its run's ``figures/``, copied as ``name``."""
        run = sweep.run_dir(job)
        source = run / "figures" / figure if run else None
        self.image(name, caption, copy_figure(source), f"{job} has no {figure}")


def copy_figure(source: Path | None) -> Callable[[Path], bool]:
    """A run's PNG, shrunk to ``FIGURE_WIDTH`` pixels wide at most."""

    def make(path: Path) -> bool:
        if source is None or not source.exists():
            return False
        from PIL import Image

        with Image.open(source) as image:
            image = image.convert("RGB")
            if image.width > FIGURE_WIDTH:
                height = round(image.height * FIGURE_WIDTH / image.width)
                image = image.resize((FIGURE_WIDTH, height), Image.Resampling.LANCZOS)
            image.save(path, optimize=True)
        return True

    return make


def _new_axes(width: float = 6.5, height: float = 4.0) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    return fig, fig.subplots()


def _save(fig: Any, ax: Any, path: Path) -> bool:
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return True


def plot_curves(
    sweep: Sweep, jobs: Sequence[str], tag: str, ylabel: str, log_y: bool = True
) -> Callable[[Path], bool]:
    """``tag`` per epoch, one line per finished job."""

    def make(path: Path) -> bool:
        curves = {}
        for job in jobs:
            run = sweep.run_dir(job)
            points = read_scalars(run, [tag]).get(tag) if run else None
            if points:
                curves[job.split("/")[-1]] = sorted(points)
        if not curves:
            return False
        fig, ax = _new_axes()
        for label, points in curves.items():
            ax.plot(*zip(*points, strict=True), "o-", markersize=3, label=label)
        if log_y:
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        return _save(fig, ax, path)

    return make


def plot_per_digit(sweep: Sweep, jobs: Sequence[str], pca_job: str) -> Callable[[Path], bool]:
    """Test MSE per digit: bars for each job and for PCA at ``pca_job``'s latent size."""

    def make(path: Path) -> bool:
        digits = range(10)
        series = {}
        for job in jobs:
            row = sweep.job(job) or {}
            if all(f"test/mse_digit/{k}" in row for k in digits):
                series[job.split("/")[-1]] = [row[f"test/mse_digit/{k}"] for k in digits]
        pca_row = sweep.job(pca_job) or {}
        if all(f"pca/test_mse_digit/{k}" in pca_row for k in digits):
            series[f"PCA({pca_row.get('latent')})"] = [
                pca_row[f"pca/test_mse_digit/{k}"] for k in digits
            ]
        if not series:
            return False
        fig, ax = _new_axes(7, 3.8)
        width = 0.8 / len(series)
        for i, (label, values) in enumerate(series.items()):
            ax.bar(
                [k + (i - (len(series) - 1) / 2) * width for k in digits],
                values,
                width,
                label=label,
            )
        ax.set_xticks(list(digits))
        ax.set_xlabel("digit")
        ax.set_ylabel("test MSE")
        return _save(fig, ax, path)

    return make


def plot_masking(sweep: Sweep, jobs: dict[float, str]) -> Callable[[Path], bool]:
    """Test MSE against the masking probability, the autoencoder and PCA on the same inputs."""

    def make(path: Path) -> bool:
        points = [(p, sweep.job(j)) for p, j in sorted(jobs.items())]
        points = [(p, r) for p, r in points if r and r.get("test/mse") is not None]
        if not points:
            return False
        fig, ax = _new_axes(6, 3.8)
        ps = [p for p, _ in points]
        ax.plot(ps, [r["test/mse"] for _, r in points], "o-", label="dense AE (latent 32)")
        pca = [(p, r["pca/test_mse"]) for p, r in points if r.get("pca/test_mse") is not None]
        if pca:
            ax.plot(*zip(*pca, strict=True), "k--", marker="x", label="PCA (32 components)")
        ax.set_yscale("log")
        ax.set_xlabel("probability that an input pixel is dropped")
        ax.set_ylabel("test MSE against the clean image")
        return _save(fig, ax, path)

    return make


def plot_latent(sweep: Sweep, jobs: Sequence[str]) -> Callable[[Path], bool]:
    rows = [sweep.job(j) for j in jobs]
    return lambda path: report.plot_mse_vs_latent([r for r in rows if r], path)


def comparison_table(sweep: Sweep) -> str:
    lines = [
        "| figure | published | ae_lab | ae_lab / published | beaten | job |",
        "|---|---|---|---|---|---|",
    ]
    for c in report.compare(sweep.rows, sweep.reference):
        metric = c["metric"]
        if c["ours"] is None:
            ours, ratio, beaten = "missing (job not finished)", "", ""
        else:
            ours = report.fmt(c["ours"], metric)
            ratio = f"{c['ratio']:.3f}"
            beaten = metrics.beaten(metric, c["ours"], c["published"])
        lines.append(
            f"| {c['what']} (`{metric}`) | {report.fmt(c['published'], metric)} | {ours} | "
            f"{ratio} | {beaten} | {c['run']} |"
        )
    return "\n".join(lines)


def sweep_section(page: Page, sweep: Sweep) -> None:
    done = sum(r["status"] == "completed" for r in sweep.rows)
    minutes = sweep.wall_minutes()
    took = ""
    if minutes is not None:
        took = f", {minutes:.1f} min from the first job's start to the last job's end"
    page.add(
        f"## {sweep.title}",
        "",
        f"Command: `{sweep.command()}` (sweep `{sweep.path.name}`, {done} of {len(sweep.rows)} "
        "jobs completed" + took + ").",
        "",
        comparison_table(sweep),
        "",
        "Every job (times in seconds; `time/epoch_s` includes validation):",
        "",
        report.markdown_table(
            sweep.rows, [c for c in JOB_COLUMNS if any(c in r for r in sweep.rows)]
        ),
        "",
    )


def course_figures(page: Page, sweep: Sweep) -> None:
    aes = ["course/dense_ae_32", "course/dense_ae_64", "course/deep_ae_64"]
    unfinished = "the autoencoder jobs have not finished"
    page.add("### Figures", "")
    page.image(
        "course_learning_curves.png",
        "Course report: validation MSE per epoch",
        plot_curves(sweep, aes, "val/mse", "validation MSE"),
        unfinished,
    )
    page.image(
        "course_per_digit.png",
        "Course report: test MSE per digit, autoencoders and PCA(64)",
        plot_per_digit(sweep, aes, "course/deep_ae_64"),
        unfinished,
    )
    for job in ("dense_ae_32", "deep_ae_64"):
        page.run_figure(
            sweep,
            f"course/{job}",
            "latent_map.png",
            f"course_tsne_{job}.png",
            f"Course report: t-SNE of the {job} test codes",
        )
    page.run_figure(
        sweep,
        "course/deep_ae_64",
        "reconstructions.png",
        "course_reconstructions.png",
        "Course report: validation images (top), the model input (middle; no corruption here) "
        "and the deeper AE's reconstructions (bottom)",
    )


def auth_figures(page: Page, sweep: Sweep) -> None:
    page.add("### Figures", "")
    latent_jobs = [
        "auth/dense_ae_2",
        "auth/dense_ae_8",
        "auth/dense_ae_32",
        "auth/pca_080",
        "auth/pca_090",
        "auth/pca_095",
    ]
    page.image(
        "auth_learning_curves_ae.png",
        "University report: dense autoencoders' validation MSE per epoch, by latent size",
        plot_curves(sweep, latent_jobs, "val/mse", "validation MSE"),
        "no dense autoencoder job has finished",
    )
    page.image(
        "auth_learning_curves_vae.png",
        "University report: the VAEs' validation loss per epoch (nats: BCE at the posterior mean "
        "+ KL)",
        plot_curves(sweep, ["auth/vae", "auth/conv_vae"], "val/loss", "validation loss (nats)"),
        "no VAE job has finished",
    )
    page.image(
        "auth_latent_size.png",
        "University report: test MSE against latent size, PCA with as many components dashed",
        plot_latent(sweep, latent_jobs),
        "no dense autoencoder job has finished",
    )
    masking = {
        0.0: "auth/dense_ae_32",
        0.25: "auth/mask_025",
        0.5: "auth/mask_050",
        0.75: "auth/mask_075",
    }
    page.image(
        "auth_masking.png",
        "University report: test MSE against input masking (dense AE and PCA at 32)",
        plot_masking(sweep, masking),
        "no masking job has finished",
    )
    for job in ("vae", "conv_vae"):
        page.run_figure(
            sweep,
            f"auth/{job}",
            "prior_samples.png",
            f"auth_samples_{job}.png",
            f"University report: 64 samples of the {job} decoded from the prior N(0, I)",
        )


def machine() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    versions = f"Python {platform.python_version()}, torch {torch.__version__}"
    return f"{cpu_name()}, {os.cpu_count()} cores, {gpu}; {versions}"


def write_page(course: Path | None, auth: Path | None, out_dir: Path) -> Path:
    """Writes ``<out_dir>/results.md`` and ``<out_dir>/figures/*.png``; returns the page's path."""
    page = Page(out_dir)
    for old in page.fig_dir.glob("course_*.png"):
        old.unlink()
    for old in page.fig_dir.glob("auth_*.png"):
        old.unlink()
    args = " ".join(f"--{k} {p}" for k, p in (("course", course), ("auth", auth)) if p)
    page.add(
        "# Results: the two reference reports, reproduced",
        "",
        "Generated by `python -m ae_lab.results "
        f"{args}` from the sweeps named below on "
        f"{dt.date.today().isoformat()}; do not edit by hand (`make results` reruns both "
        "reports and regenerates this page).",
        "",
        f"Machine: {machine()}.",
        "",
        "Every figure is per-pixel MSE on the official 10k test set with pixels in [0, 1], or "
        "accuracy on the same images, unless it says otherwise.",
        "",
    )
    sections = (
        ("The course report", "course", course, course_figures),
        ("The university report", "auth", auth, auth_figures),
    )
    for title, slug, path, figures in sections:
        if path is None:
            page.missing.append(f"{title}: no sweep given")
            page.add(f"## {title}", "", "*Missing: no sweep was given for this report.*", "")
            continue
        sweep = Sweep.load(title, slug, path)
        sweep_section(page, sweep)
        figures(page, sweep)
    if page.missing:
        page.add("## Missing", "", *[f"- {m}" for m in page.missing], "")
    out = out_dir / "results.md"
    out.write_text("\n".join(page.parts).rstrip() + "\n")
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ae_lab.results",
        description="Write docs/results.md and docs/figures/ from the reports' sweep directories.",
    )
    parser.add_argument("--course", type=Path, help="sweep dir of experiment=report_course")
    parser.add_argument("--auth", type=Path, help="sweep dir of experiment=report_auth")
    parser.add_argument("--out", type=Path, default=Path("docs"), help="default: docs")
    args = parser.parse_args(argv)
    for path in (args.course, args.auth):
        if path is not None and not path.is_dir():
            parser.error(f"{path} is not a directory")
    print(f"wrote {write_page(args.course, args.auth, args.out)}")


if __name__ == "__main__":
    main()
