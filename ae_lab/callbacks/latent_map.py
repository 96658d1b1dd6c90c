"""A 2-D map of the test codes coloured by digit: how the bottleneck organises the classes."""

from __future__ import annotations

import logging

import lightning as L
import numpy as np
import torch
from matplotlib.figure import Figure
from sklearn.manifold import TSNE
from threadpoolctl import threadpool_limits

from ae_lab.callbacks.common import TestStageCallback, figure_dir, log_figure
from ae_lab.models.base import AutoencoderModule

log = logging.getLogger(__name__)


def embed_2d(
    codes: np.ndarray,
    seed: int = 0,
    perplexity: float = 30.0,
    max_iter: int = 1000,
    threads: int | None = 1,
) -> np.ndarray:
    """Codes with two dimensions as they are; otherwise a seeded t-SNE of them.

    ``threads`` caps t-SNE's OpenMP threads: beside torch's own thread pool, scikit-learn's
    OpenMP threads compete for the same cores, and one thread ran 5-100x faster than the default
    on a 2-core machine. None: the library default."""
    if codes.shape[1] == 2:
        return codes
    if codes.shape[1] == 1:  # a line: spread it out vertically so the classes stay readable
        return np.concatenate([codes, np.random.default_rng(seed).uniform(size=codes.shape)], 1)
    perplexity = min(perplexity, max(1.0, (len(codes) - 1) / 3))
    tsne = TSNE(2, perplexity=perplexity, max_iter=max_iter, init="pca", random_state=seed)
    with threadpool_limits(limits=threads, user_api="openmp"):
        return tsne.fit_transform(codes)


def plot_map(points: np.ndarray, labels: np.ndarray, title: str) -> Figure:
    """A scatter of the points coloured by digit (no pyplot: no GUI backend, no global state)."""
    fig = Figure(figsize=(6, 5.5), dpi=100)
    ax = fig.subplots()
    scatter = ax.scatter(
        points[:, 0], points[:, 1], c=labels, cmap="tab10", vmin=-0.5, vmax=9.5, s=4
    )
    fig.colorbar(scatter, ax=ax, ticks=range(10), label="digit")
    ax.set_title(title)
    fig.tight_layout()
    return fig


class LatentMap(TestStageCallback):
    """After testing: the codes of the first ``n_points`` test images, plotted directly when the
    latent is 2-D and through a seeded t-SNE otherwise; ``figures/latent_map.png`` in the run dir
    and ``test/latent_map`` in TensorBoard. t-SNE costs grow with ``n_points``: a few hundred
    points take seconds."""

    def __init__(
        self,
        n_points: int = 500,
        seed: int = 0,
        perplexity: float = 30.0,
        max_iter: int = 500,
        threads: int | None = 1,
        output_dir: str | None = None,
    ) -> None:
        self.n_points = n_points
        self.seed = seed
        self.perplexity = perplexity
        self.max_iter = max_iter
        self.threads = threads
        self.output_dir = output_dir
        self.codes: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.codes, self.labels = [], []

    @torch.no_grad()
    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dl_idx=0):
        have = sum(len(c) for c in self.codes)
        if not isinstance(pl_module, AutoencoderModule) or have >= self.n_points:
            return
        n = self.n_points - have
        self.codes.append(pl_module.encode(batch["input"][:n]).flatten(1).float().cpu())
        self.labels.append(batch["label"][:n].cpu())

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.codes:
            return
        codes = torch.cat(self.codes).numpy()
        labels = torch.cat(self.labels).numpy()
        points = embed_2d(codes, self.seed, self.perplexity, self.max_iter, self.threads)
        how = "codes" if codes.shape[1] <= 2 else "t-SNE of the codes"
        title = f"{type(pl_module).__name__}, latent {codes.shape[1]}: {how} ({len(codes)} test)"
        fig = plot_map(points, labels, title)
        if codes.shape[1] > 2:  # t-SNE axes have no units worth reading
            fig.axes[0].set_xticks([])
            fig.axes[0].set_yticks([])
        path = figure_dir(trainer, self.output_dir) / "latent_map.png"
        fig.savefig(path)
        log_figure(trainer, "test/latent_map", fig)
        np.savez_compressed(path.with_suffix(".npz"), points=points, labels=labels)
        log.info("latent map written to %s", path)
