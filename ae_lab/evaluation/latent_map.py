"""A 2-D map of the test codes coloured by class: how the bottleneck organises the classes."""

from __future__ import annotations

import logging
from typing import Annotated

import numpy as np
import torch
from annotated_types import Ge, Gt
from matplotlib import colormaps
from matplotlib.colors import Colormap
from matplotlib.figure import Figure
from threadpoolctl import threadpool_limits

from ae_lab.callbacks.loggers import log_figure
from ae_lab.data.contract import label_names
from ae_lab.evaluation.base import Evaluation
from ae_lab.evaluation.common import skip
from ae_lab.evaluation.context import EvalContext
from ae_lab.evaluation.figures import run_title
from ae_lab.evaluation.record import BatchRecord

log = logging.getLogger(__name__)


class DegenerateCodes(ValueError):
    """Codes no map can show: fewer than two, not finite, or all the same."""


def check_codes(codes: np.ndarray) -> None:
    """Raises ``DegenerateCodes`` saying why these codes cannot be mapped."""
    if len(codes) < 2:
        raise DegenerateCodes(f"{len(codes)} test code(s); a map needs at least 2")
    bad = int((~np.isfinite(codes)).any(1).sum())
    if bad:
        raise DegenerateCodes(f"{bad} of {len(codes)} codes are not finite (NaN or infinite)")
    if (codes == codes[0]).all():
        raise DegenerateCodes(
            f"all {len(codes)} codes are identical: the model gives every image the same code "
            "(a collapsed bottleneck, e.g. dead ReLUs)"
        )


def embed_2d(
    codes: np.ndarray,
    seed: int = 0,
    perplexity: float = 30.0,
    max_iter: int = 1000,
    threads: int | None = 1,
) -> np.ndarray:
    """Codes with two dimensions as they are; otherwise a seeded t-SNE of them. Raises
    ``DegenerateCodes`` for codes that cannot be mapped.

    ``threads`` caps t-SNE's OpenMP threads: beside torch's own thread pool, scikit-learn's
    OpenMP threads compete for the same cores, and one thread ran 5-100x faster than the default
    on a 2-core machine. None: the library default."""
    check_codes(codes)
    if codes.shape[1] == 2:
        return codes
    if codes.shape[1] == 1:  # a line: spread it out vertically so the classes stay readable
        return np.concatenate([codes, np.random.default_rng(seed).uniform(size=codes.shape)], 1)
    # t-SNE's PCA initialisation divides by the spread of the first component. Codes whose spread
    # is 0 in float32 (identical, or differing only by denormals) make that 0/0, and scikit-learn's
    # Barnes-Hut tree then recurses on NaN until the process dies (exit 139, no message, the rest
    # of a sweep lost). t-SNE depends on neither the codes' offset nor their scale, so centred
    # codes with a largest deviation of 1 give the same map with a spread no rounding can zero.
    centred = codes.astype(np.float64) - codes.mean(0, dtype=np.float64)
    centred /= np.abs(centred).max()
    perplexity = min(perplexity, max(1.0, (len(codes) - 1) / 3))
    from sklearn.manifold import TSNE  # here: scikit-learn's manifold and SciPy cost 0.5 s to load

    tsne = TSNE(2, perplexity=perplexity, max_iter=max_iter, init="pca", random_state=seed)
    with threadpool_limits(limits=threads, user_api="openmp"):
        return tsne.fit_transform(centred)


def plot_map(
    points: np.ndarray, labels: np.ndarray, title: str, names: list[str] | None = None
) -> Figure:
    """A scatter of the points coloured by class, one colour each, the colour bar labelled with
    the class names (the indices of ten classes, or of every label, when None; no pyplot: no GUI
    backend, no global state)."""
    n = max(10, int(labels.max()) + 1) if len(labels) else 10
    names = names or [str(k) for k in range(n)]
    fig = Figure(figsize=(6, 5.5), dpi=100)
    ax = fig.subplots()
    scatter = ax.scatter(
        points[:, 0],
        points[:, 1],
        c=labels,
        cmap=class_colours(len(names)),
        vmin=-0.5,
        vmax=len(names) - 0.5,
        s=4,
    )
    bar = fig.colorbar(scatter, ax=ax, ticks=range(len(names)), label="class")
    bar.set_ticklabels(names)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def class_colours(n_classes: int) -> Colormap:
    """One distinct colour per class: matplotlib's tab10 up to ten classes (every shipped
    dataset), tab20 up to twenty, else a sweep of turbo (a folder with many sub-folders)."""
    if n_classes <= 10:
        return colormaps["tab10"]
    if n_classes <= 20:
        return colormaps["tab20"].resampled(n_classes)
    return colormaps["turbo"].resampled(n_classes)


class LatentMap(Evaluation):
    """After testing: the codes of the first ``n_points`` test images, plotted directly when the
    latent is 2-D and through a seeded t-SNE otherwise; ``figures/latent_map.png`` in the run dir
    and ``test/latent_map`` in the loggers that show images. The codes are the batch records'
    (a VAE's posterior means). t-SNE costs grow with ``n_points``: a few hundred
    points take seconds. Codes no map can show (see ``check_codes``) give one warning, no map.
    Under DDP the first process maps its own share of the test set."""

    def __init__(
        self,
        n_points: Annotated[int, Ge(2)] = 500,
        seed: Annotated[int, Ge(0)] = 0,
        perplexity: Annotated[float, Gt(0)] = 30.0,
        max_iter: Annotated[int, Ge(250)] = 500,
        threads: Annotated[int, Ge(1)] | None = 1,
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

    def start(self, ctx: EvalContext) -> None:
        self.codes, self.labels = [], []

    def update(self, ctx: EvalContext, record: BatchRecord) -> None:
        have = sum(len(c) for c in self.codes)
        if not ctx.writes_files or have >= self.n_points:
            return
        n = self.n_points - have  # the codes the test step computed
        self.codes.append(record.code[:n].flatten(1).float().cpu())
        self.labels.append(record.label[:n].cpu())

    def finish(self, ctx: EvalContext) -> None:
        if not self.codes:
            return
        trainer, pl_module = ctx.trainer, ctx.model
        codes = torch.cat(self.codes).numpy()
        labels = torch.cat(self.labels).numpy()
        try:
            points = embed_2d(codes, self.seed, self.perplexity, self.max_iter, self.threads)
        except DegenerateCodes as err:
            skip("latent map", str(err))
            return
        how = "codes" if codes.shape[1] <= 2 else "t-SNE of the codes"
        title = f"{run_title(trainer, pl_module)}\n{how} of {len(codes)} test images"
        fig = plot_map(points, labels, title, label_names(getattr(trainer, "datamodule", None)))
        ax = fig.axes[0]
        if codes.shape[1] > 2:  # t-SNE axes have no units worth reading
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel("t-SNE 1")
            ax.set_ylabel("t-SNE 2")
        elif codes.shape[1] == 2:
            ax.set_xlabel("code dimension 1")
            ax.set_ylabel("code dimension 2")
        else:
            ax.set_xlabel("code")
            ax.set_ylabel("random spread (no meaning)")
        fig.tight_layout()
        path = log_figure(trainer, "test/latent_map", fig, self.output_dir)
        if path is not None:
            np.savez_compressed(path.with_suffix(".npz"), points=points, labels=labels)
            log.info("latent map written to %s", path)
