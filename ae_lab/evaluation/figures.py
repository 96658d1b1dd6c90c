"""Image grids that explain themselves: a title naming the run's config and key settings, a label
for every row and axis, and a size a reader can see the digits at.

The grids are matplotlib figures (no pyplot: no GUI backend, no global state), which
``ae_lab.callbacks.loggers.log_figure`` writes to ``figures/`` and hands to every logger.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
from matplotlib.figure import Figure
from torchvision.utils import make_grid

# inches per image at 100 dpi: a 28-pixel digit drawn at about 60 pixels
IMAGE_INCHES = 0.6
PADDING = 2  # pixels between images, in the image's own pixels
DPI = 100


def run_title(trainer: L.Trainer | None, pl_module: L.LightningModule) -> str:
    """``deep_ae, latent 8, transform mask, 20 epochs``: the config the run was built from (the
    Hydra choices, which tell ``model=ae`` from ``model=deep_ae`` where the class name cannot), its
    bottleneck and how long it trained. Outside a Hydra run, the model's class name."""
    from hydra.core.hydra_config import HydraConfig

    name, transform = type(pl_module).__name__, None
    if HydraConfig.initialized():
        choices = HydraConfig.get().runtime.choices
        name = choices.get("model") or name
        job = choices.get("report_job")
        name = f"{job} ({name})" if job else name
        transform = choices.get("transform")
    parts = [name]
    latent = getattr(pl_module, "latent_dim", None)
    if latent is not None:
        parts.append(f"latent {latent}")
    if transform and transform != "none":
        parts.append(f"transform {transform}")
    if trainer is not None and trainer.max_epochs is not None and trainer.max_epochs >= 0:
        parts.append(f"{trainer.max_epochs} epoch{'' if trainer.max_epochs == 1 else 's'}")
    return ", ".join(parts)


def _strip(images: torch.Tensor, nrow: int) -> torch.Tensor:
    """Images as one (H, W, C) picture, ``nrow`` a row, white between them."""
    grid = make_grid(images.float().clamp(0, 1).cpu(), nrow=nrow, padding=PADDING, pad_value=1.0)
    return grid.permute(1, 2, 0)


def _show(ax, picture: torch.Tensor) -> None:
    ax.imshow(picture.numpy(), vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def labelled_rows(
    rows: Sequence[tuple[str, torch.Tensor]],
    title: str,
    xlabel: str | None = None,
    column_labels: Sequence[str] | None = None,
) -> Figure:
    """One row of images per ``(label, images)`` (all rows as long), the label left of it; the
    columns' labels under the last row and ``xlabel`` under those."""
    n = max(len(images) for _, images in rows)
    width = n * IMAGE_INCHES + 2.2
    height = len(rows) * IMAGE_INCHES + 0.9 + (0.3 if xlabel else 0) + (0.2 if column_labels else 0)
    fig = Figure(figsize=(width, height), dpi=DPI)
    axes = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
    for ax, (label, images) in zip(axes, rows, strict=True):
        _show(ax, _strip(images, n))
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    last = axes[-1]
    if column_labels is not None:
        side = rows[-1][1].shape[-1] + PADDING
        last.set_xticks([PADDING + side * i + (side - PADDING) / 2 for i in range(n)])
        last.set_xticklabels(column_labels, fontsize=8)
        last.tick_params(length=0)
    if xlabel:
        last.set_xlabel(xlabel, fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def image_grid(images: torch.Tensor, nrow: int, title: str, xlabel: str | None = None) -> Figure:
    """A grid of images, ``nrow`` a row, with a title and a line under it saying what they are."""
    picture = _strip(images, nrow)
    rows = -(-len(images) // nrow)
    fig = Figure(figsize=(nrow * IMAGE_INCHES + 1, rows * IMAGE_INCHES + 1.2), dpi=DPI)
    ax = fig.subplots()
    _show(ax, picture)
    if xlabel:
        ax.set_xlabel(xlabel, fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
