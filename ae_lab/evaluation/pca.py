"""PCA at the same bottleneck size, scored exactly like the model it sits beside.

The suite fits it once per run (``fit_shared_pca``, from this evaluation's settings) and puts its
reconstruction of every batch in the batch's record (``BatchRecord.pca_recon``), where the other
evaluations that score PCA read it. A fit is kept in the process for the next run on the same
training images (``shared_fit``): the jobs of a sweep that Hydra's basic launcher runs one after
the other (every model at one latent size, every seed) share one fit.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import lightning as L
import torch
from annotated_types import Ge, Gt, Lt
from torchmetrics import MeanSquaredError

from ae_lab.evaluation.base import PCA as PCA_NAME
from ae_lab.evaluation.base import Evaluation
from ae_lab.evaluation.context import EvalContext, FittedPCA, Shared
from ae_lab.evaluation.record import BatchRecord

if TYPE_CHECKING:
    from sklearn.decomposition import PCA

log = logging.getLogger(__name__)

# the fits made in this process, by (the training images' digest, components, seed): the fit and
# the seconds it took. A few are kept (each is its components and means: small); the oldest goes
KEPT_FITS = 4
_fits: OrderedDict[tuple[str, int | float, int], tuple[PCA, float]] = OrderedDict()


class LinearReconstruction(torch.nn.Module):
    """A fitted PCA as a torch module: x -> mean + (x - mean) P^T P, on any device."""

    def __init__(self, components: torch.Tensor, mean: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("components", components)
        self.register_buffer("mean", mean)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1) - self.mean
        return (flat @ self.components.T @ self.components + self.mean).view_as(x)


def fit_pca(images: torch.Tensor, n_components: int | float, seed: int = 0) -> PCA:
    """scikit-learn PCA on flattened images; a float in (0, 1) is a share of explained variance."""
    from sklearn.decomposition import PCA  # here: a run without the baseline never loads it

    return PCA(n_components=n_components, random_state=seed).fit(images.flatten(1).cpu().numpy())


def shared_fit(
    images: torch.Tensor, n_components: int | float, seed: int
) -> tuple[PCA, float, bool]:
    """``fit_pca`` of these images, or the same fit made earlier in this process on images of
    the same bytes: (the fit, the seconds the fit took, whether it was made earlier). The digest
    costs about a fifth of the fit (MNIST's 55,000 training images: 0.08 s against 0.4 s)."""
    flat = images.detach().cpu().contiguous()
    digest = hashlib.sha1(flat.numpy().data).hexdigest()
    key = (f"{digest}:{tuple(flat.shape)}:{flat.dtype}", n_components, seed)
    if key in _fits:
        _fits.move_to_end(key)
        return (*_fits[key], True)
    start = time.perf_counter()
    pca = fit_pca(flat, n_components, seed)
    _fits[key] = (pca, time.perf_counter() - start)
    while len(_fits) > KEPT_FITS:
        _fits.popitem(last=False)
    return (*_fits[key], False)


def fit_shared_pca(
    trainer: L.Trainer, model: L.LightningModule, n_components: int | float | None, seed: int
) -> FittedPCA:
    """PCA fitted on the run's training images, ``n_components`` of them (None: the model's
    latent size; a count above the images' rank is that rank, with one warning). Under DDP the
    first process fits it and sends it to the others."""
    n = n_components if n_components is not None else model.latent_dim
    images = trainer.datamodule.images("train")
    if isinstance(n, int) and n > min(images[0].numel(), len(images)):
        # an overcomplete code (latent > 784) meets the full-rank PCA, which is exact; the
        # count PCA has is what pca/n_components records
        rank = min(images[0].numel(), len(images))
        if trainer.is_global_zero:
            log.warning(
                "PCA baseline: %d components asked for, but %d images of %d pixels have at "
                "most %d; PCA uses %d (recorded as pca/n_components)",
                n,
                len(images),
                images[0].numel(),
                rank,
                rank,
            )
        n = rank
    pca, seconds, earlier = (
        shared_fit(images, n, seed) if trainer.is_global_zero else (None, 0.0, False)
    )
    pca = trainer.strategy.broadcast(pca, src=0)
    reconstruct = LinearReconstruction(
        torch.as_tensor(pca.components_, dtype=torch.float32),
        torch.as_tensor(pca.mean_, dtype=torch.float32),
    ).to(model.device)
    if trainer.is_global_zero:
        log.info(
            "PCA baseline: %d components (%.1f%% of variance) fitted on %d images in %.2f s%s",
            pca.n_components_,
            100 * pca.explained_variance_ratio_.sum(),
            len(images),
            seconds,
            " (by an earlier run in this process on the same images)" if earlier else "",
        )
    return FittedPCA(pca, reconstruct, seconds)


@dataclass(frozen=True)
class PCASettings:
    """What the suite fits the shared PCA with (``callbacks.pca``)."""

    n_components: int | float | None
    seed: int

    def build(self, trainer: L.Trainer, model: L.LightningModule) -> FittedPCA:
        return fit_shared_pca(trainer, model, self.n_components, self.seed)


class PCABaseline(Evaluation):
    """Logs ``pca/val_mse`` and ``pca/test_mse``: the same corrupted inputs, the same clean
    images and the same metric as ``val/mse`` and ``test/mse``, so model and PCA share a chart
    in TensorBoard. Where the model's target is a binarized copy (``data.binarize_target``),
    ``pca/val_mse_target`` and ``pca/test_mse_target`` score it against that target too, as the
    model's ``*/mse_target``; after the test, ``pca/n_components``.

    ``n_components`` defaults to the model's latent size; a float in (0, 1) picks the number of
    components that explains that share of the variance instead. The PCA is fitted once per run
    on the model's training images, by the suite, which shares it with every evaluation.
    """

    stages = ("val", "test")

    def __init__(
        self,
        n_components: Annotated[int, Ge(1)] | Annotated[float, Gt(0), Lt(1)] | None = None,
        seed: Annotated[int, Ge(0)] = 0,
    ) -> None:
        is_count = isinstance(n_components, int) and not isinstance(n_components, bool)
        is_ratio = isinstance(n_components, float) and 0 < n_components < 1
        if n_components is not None and not (is_ratio or (is_count and n_components >= 1)):
            raise ValueError(
                "callbacks.pca.n_components must be an integer >= 1 or a variance ratio in "
                f"(0, 1), got {n_components!r}"
            )
        self.n_components = n_components
        self.seed = seed
        self.pca: PCA | None = None  # the shared fit, once the suite has made it
        self.reconstruct: LinearReconstruction | None = None
        self.metrics: dict[str, MeanSquaredError] = {}

    def provides(self) -> dict[str, Any]:
        return {PCA_NAME: PCASettings(self.n_components, self.seed)}

    def attach(self, shared: Shared) -> None:
        fitted = shared.pca
        self.pca = fitted.pca if fitted is not None else None
        self.reconstruct = fitted.reconstruct if fitted is not None else None

    def start(self, ctx: EvalContext) -> None:
        self.metrics = {}

    def update(self, ctx: EvalContext, record: BatchRecord) -> None:
        if record.pca_recon is None:
            return
        against = {"mse": record.clean}
        if record.binarized:  # as the model's mse_target
            against["mse_target"] = record.target
        for name, image in against.items():
            metric = self.metrics.get(name)
            if metric is None:
                metric = self.metrics[name] = MeanSquaredError().to(ctx.device)
            metric.update(record.pca_recon, image)

    def finish(self, ctx: EvalContext) -> None:
        for name, metric in self.metrics.items():
            # compute() reduces across DDP processes, so all log the same
            ctx.log(f"pca/{ctx.stage}_{name}", metric.compute())
        self.metrics = {}
        if ctx.stage == "test" and self.pca is not None:  # what a variance ratio came to
            ctx.log("pca/n_components", float(self.pca.n_components_))
