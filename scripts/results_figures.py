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

from ae_lab.reporting import groups, report

if TYPE_CHECKING:
    from scripts.results_sweep import Sweep

FIGURE_WIDTH = 720  # pixels; copied run figures are shrunk to this so docs/figures stays small
# the rest are the plot's own arguments; `metrics`: numbers of the figure's job shown under it
PAGE_KEYS = ("plot", "file", "caption", "missing", "metrics")
CLASSES = range(10)


def read_scalars(run_dir: Path, tags: Sequence[str]) -> dict[str, list[tuple[int, float]]]:
    """Per-epoch values of ``tags`` from a run's TensorBoard event files, as (epoch, value): the
    step is the epoch (ae_lab/callbacks/epoch_axis.py); in runs from before that, the ``epoch``
    scalar logged at the same step gives it, counted from 0."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[tuple[int, float]]] = {}
    for events in sorted(run_dir.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        scalars = acc.Tags()["scalars"]
        epochs = {e.step: e.value for e in acc.Scalars("epoch")} if "epoch" in scalars else {}
        for tag in set(tags) & set(scalars):
            out.setdefault(tag, []).extend(
                (int(epochs[e.step]) + 1 if epochs else e.step, e.value)
                for e in acc.Scalars(tag)
                if not epochs or e.step in epochs
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


def label(row: Mapping[str, Any]) -> str:
    """What a job is, from its record: ``ae, latent 44``, ``ae, latent 32, mask``."""
    parts = [str(row.get("model") or "?")]
    if row.get("latent") is not None:
        parts.append(f"latent {row['latent']}")
    if row.get("transform") not in (None, "none"):
        parts.append(str(row["transform"]))
    return ", ".join(parts)


def _seeds(n: int) -> str:
    return f" ({n} seeds)" if n > 1 else ""


def _err(stat: Any) -> float:
    return stat.std or 0.0


def run_figure(sweep: Sweep, path: Path, job: str, figure: str) -> bool:
    """A PNG that ``job``'s first seed saved in its run's ``figures/``, shrunk to
    ``FIGURE_WIDTH`` at most."""
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


def mean_curve(runs: Sequence[Sequence[tuple[int, float]]]) -> list[tuple[int, float, float]]:
    """(epoch, mean, sample std) over the runs that reached each epoch; std 0 for one run."""
    by_epoch: dict[int, list[float]] = {}
    for points in runs:
        for epoch, value in dict(points).items():  # one value per epoch, the last logged
            by_epoch.setdefault(epoch, []).append(value)
    return [(e, *_mean_std(v)) for e, v in sorted(by_epoch.items())]


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    stat = groups.Stat.of(values)
    return stat.mean, stat.std or 0.0


def curves(
    sweep: Sweep, path: Path, jobs: Sequence[str], tag: str, ylabel: str, log_y: bool = True
) -> bool:
    """``tag`` per epoch, one line per job: the mean over its finished seeds, a band of ± one
    sample std around it."""
    from matplotlib.ticker import MaxNLocator

    lines = {}
    for job in jobs:
        runs = sweep.runs(job)
        curves_ = [read_scalars(sweep.path / r["job"], [tag]).get(tag) for r in runs]
        curves_ = [sorted(c) for c in curves_ if c]
        if curves_:
            name = label(runs[0]) + _seeds(len(curves_))
            # two jobs alike in model and latent are told apart by their preset names
            name = f"{name}: {job.split('/')[-1]}" if name in lines else name
            lines[name] = mean_curve(curves_)
    if not lines:
        return False
    fig, ax = _new_axes()
    for name, points in lines.items():
        epochs, means, stds = zip(*points, strict=True)
        (line,) = ax.plot(epochs, means, "o-", markersize=3, label=name)
        lows = [m - s for m, s in zip(means, stds, strict=True)]
        highs = [m + s for m, s in zip(means, stds, strict=True)]
        ax.fill_between(epochs, lows, highs, color=line.get_color(), alpha=0.2, linewidth=0)
    if log_y:
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel + " (band: ± std over seeds)")
    return _save(fig, ax, path)


def per_class(sweep: Sweep, path: Path, jobs: Sequence[str], pca_job: str) -> bool:
    """Test MSE per digit: bars (mean over seeds, error bar the std) for each job and for PCA
    at ``pca_job``'s latent size."""
    series = {}
    for job in jobs:
        group = sweep.group(job) or {}
        if all(f"test/mse_digit/{k}" in group for k in CLASSES):
            stats = [group[f"test/mse_digit/{k}"] for k in CLASSES]
            series[label(group) + _seeds(group["completed"])] = stats
    pca_group = sweep.group(pca_job) or {}
    if all(f"pca/test_mse_digit/{k}" in pca_group for k in CLASSES):
        series[f"PCA, {pca_group.get('latent')} components"] = [
            pca_group[f"pca/test_mse_digit/{k}"] for k in CLASSES
        ]
    if not series:
        return False
    fig, ax = _new_axes(7, 3.8)
    width = 0.8 / len(series)
    for i, (name, stats) in enumerate(series.items()):
        xs = [k + (i - (len(series) - 1) / 2) * width for k in CLASSES]
        means, errs = [s.mean for s in stats], [_err(s) for s in stats]
        ax.bar(xs, means, width, yerr=errs, capsize=2, label=name)
    ax.set_xticks(list(CLASSES))
    ax.set_xlabel("digit")
    ax.set_ylabel("test MSE (error bars: std over seeds)")
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
    and PCA on the same inputs: means over seeds, error bars the std."""
    rows = [(x, sweep.group(job)) for x, job in sorted(points.items())]
    rows = [(x, g) for x, g in rows if g and isinstance(g.get("test/mse"), groups.Stat)]
    if not rows:
        return False
    n = max(g["completed"] for _, g in rows)
    fig, ax = _new_axes(6, 3.8)
    xs = [x for x, _ in rows]
    model = [g["test/mse"] for _, g in rows]
    ax.errorbar(
        xs,
        [s.mean for s in model],
        yerr=[_err(s) for s in model],
        fmt="o-",
        capsize=3,
        label=label + _seeds(n),
    )
    pca = [(x, g["pca/test_mse"]) for x, g in rows if g.get("pca/test_mse") is not None]
    if pca:
        px, stats = zip(*pca, strict=True)
        ax.errorbar(
            px,
            [s.mean for s in stats],
            yerr=[_err(s) for s in stats],
            fmt="k--",
            marker="x",
            capsize=3,
            label=pca_label,
        )
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return _save(fig, ax, path)


def latent_size(sweep: Sweep, path: Path, jobs: Sequence[str]) -> bool:
    """Test MSE against latent size (``ae_lab.reporting.report``'s sweep plot, error bars over
    seeds) over every finished seed of ``jobs``."""
    rows = [r for job in jobs for r in sweep.runs(job)]
    return report.plot_mse_vs_latent(rows, path, sweep.average_over)


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
    # read back from a sweep's multirun.yaml: names inside their folders, never paths out of them
    for key in ("file", "figure"):
        name = spec.get(key)
        if name is not None and not (isinstance(name, str) and _plain_name(name)):
            return f"{key} must be a file name without a folder, got {name!r}"
    try:
        inspect.signature(plot).bind(None, None, **arguments(spec))
    except TypeError as err:
        return f"{spec['plot']}: {err}"
    return None


def _plain_name(name: str) -> bool:
    return name not in ("", ".", "..") and Path(name).name == name and "\\" not in name


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
