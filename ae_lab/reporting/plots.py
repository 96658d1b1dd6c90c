"""The sweep's figure: test MSE against latent size (``mse_vs_latent.png``), one line per model
and transform beside PCA, each point a group's mean with the spread over seeds as its error bar.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ae_lab.reporting import groups


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
