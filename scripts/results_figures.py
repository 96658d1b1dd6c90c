"""The figures a report preset can declare for the results page (``report.figures``).

Each entry of ``report.figures`` names a ``plot`` of ``PLOTS``, the ``file`` it is written to
under ``docs/figures/``, its ``caption``, optionally why it would be ``missing``, and the plot's
own keys (the jobs it is drawn from, a scalar's tag, axis labels), which are the arguments of the
function below. A plot draws what the finished jobs give and says whether it could draw anything.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ae_lab.reporting import report

if TYPE_CHECKING:
    from scripts.results import Sweep

FIGURE_WIDTH = 720  # pixels; copied run figures are shrunk to this so docs/figures stays small
PAGE_KEYS = ("plot", "file", "caption", "missing")  # the rest are the plot's own arguments
CLASSES = range(10)


def read_scalars(run_dir: Path, tags: Sequence[str]) -> dict[str, list[tuple[int, float]]]:
    """Per-epoch values of ``tags`` from a run's TensorBoard event files, as (epoch, value)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[tuple[int, float]]] = {}
    for events in sorted(run_dir.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        scalars = acc.Tags()["scalars"]
        epochs = {e.step: e.value for e in acc.Scalars("epoch")} if "epoch" in scalars else {}
        for tag in set(tags) & set(scalars):
            out.setdefault(tag, []).extend(
                (int(epochs.get(e.step, i)) + 1, e.value) for i, e in enumerate(acc.Scalars(tag))
            )
    return out


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


def _short(job: str) -> str:
    return job.split("/")[-1]


def run_figure(sweep: Sweep, path: Path, job: str, figure: str) -> bool:
    """A PNG that ``job`` saved in its run's ``figures/``, shrunk to ``FIGURE_WIDTH`` at most."""
    run = sweep.run_dir(job)
    source = run / "figures" / figure if run else None
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


def curves(
    sweep: Sweep, path: Path, jobs: Sequence[str], tag: str, ylabel: str, log_y: bool = True
) -> bool:
    """``tag`` per epoch, one line per finished job."""
    lines = {}
    for job in jobs:
        run = sweep.run_dir(job)
        points = read_scalars(run, [tag]).get(tag) if run else None
        if points:
            lines[_short(job)] = sorted(points)
    if not lines:
        return False
    fig, ax = _new_axes()
    for label, points in lines.items():
        ax.plot(*zip(*points, strict=True), "o-", markersize=3, label=label)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    return _save(fig, ax, path)


def per_class(sweep: Sweep, path: Path, jobs: Sequence[str], pca_job: str) -> bool:
    """Test MSE per digit: bars for each job and for PCA at ``pca_job``'s latent size."""
    series = {}
    for job in jobs:
        row = sweep.job(job) or {}
        if all(f"test/mse_digit/{k}" in row for k in CLASSES):
            series[_short(job)] = [row[f"test/mse_digit/{k}"] for k in CLASSES]
    pca_row = sweep.job(pca_job) or {}
    if all(f"pca/test_mse_digit/{k}" in pca_row for k in CLASSES):
        series[f"PCA({pca_row.get('latent')})"] = [
            pca_row[f"pca/test_mse_digit/{k}"] for k in CLASSES
        ]
    if not series:
        return False
    fig, ax = _new_axes(7, 3.8)
    width = 0.8 / len(series)
    for i, (label, values) in enumerate(series.items()):
        xs = [k + (i - (len(series) - 1) / 2) * width for k in CLASSES]
        ax.bar(xs, values, width, label=label)
    ax.set_xticks(list(CLASSES))
    ax.set_xlabel("digit")
    ax.set_ylabel("test MSE")
    return _save(fig, ax, path)


def against(
    sweep: Sweep,
    path: Path,
    points: Mapping[float, str],
    xlabel: str,
    ylabel: str,
    label: str,
    pca_label: str,
) -> bool:
    """Test MSE against a setting (``points``: its value and the job trained with it), the model
    and PCA on the same inputs."""
    rows = [(x, sweep.job(job)) for x, job in sorted(points.items())]
    rows = [(x, r) for x, r in rows if r and r.get("test/mse") is not None]
    if not rows:
        return False
    fig, ax = _new_axes(6, 3.8)
    ax.plot([x for x, _ in rows], [r["test/mse"] for _, r in rows], "o-", label=label)
    pca = [(x, r["pca/test_mse"]) for x, r in rows if r.get("pca/test_mse") is not None]
    if pca:
        ax.plot(*zip(*pca, strict=True), "k--", marker="x", label=pca_label)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return _save(fig, ax, path)


def latent_size(sweep: Sweep, path: Path, jobs: Sequence[str]) -> bool:
    """Test MSE against latent size (``ae_lab.reporting.report``'s sweep plot) over ``jobs``."""
    return report.plot_mse_vs_latent([r for r in map(sweep.job, jobs) if r], path)


PLOTS: dict[str, Callable[..., bool]] = {
    f.__name__: f for f in (run_figure, curves, per_class, against, latent_size)
}


def check(spec: Mapping[str, Any]) -> str | None:
    """What is wrong with a declared figure, if anything: an unknown plot, a missing key."""
    plot = PLOTS.get(spec.get("plot"))
    if plot is None:
        return f"plot must be one of {', '.join(PLOTS)}, got {spec.get('plot')!r}"
    if not spec.get("file") or not spec.get("caption"):
        return "a figure needs a file and a caption"
    try:
        inspect.signature(plot).bind(None, None, **arguments(spec))
    except TypeError as err:
        return f"{spec['plot']}: {err}"
    return None


def arguments(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k not in PAGE_KEYS}


def jobs_of(spec: Mapping[str, Any]) -> list[str]:
    """The jobs a declared figure is drawn from."""
    args = arguments(spec)
    named = [args.get("job"), args.get("pca_job"), *args.get("jobs", [])]
    return [j for j in (*named, *dict(args.get("points") or {}).values()) if j]


def draw(spec: Mapping[str, Any], sweep: Sweep, path: Path) -> bool:
    return PLOTS[spec["plot"]](sweep, path, **arguments(spec))


def why_missing(spec: Mapping[str, Any]) -> str:
    if spec.get("missing"):
        return spec["missing"]
    if spec["plot"] == "run_figure":
        return f"{spec['job']} has no {spec['figure']}"
    return "none of its jobs has finished"
