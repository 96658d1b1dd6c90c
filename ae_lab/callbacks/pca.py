"""PCA at the same bottleneck size, scored exactly like the model it sits beside."""

from __future__ import annotations

import logging
import time
from typing import Any

import lightning as L
import torch
from sklearn.decomposition import PCA
from torchmetrics import MeanSquaredError

from ae_lab.callbacks.common import find_callback
from ae_lab.data.contract import CLEAN, clean_image
from ae_lab.models.base import AutoencoderModule, Batch

log = logging.getLogger(__name__)

# where a batch's PCA reconstruction is kept in the step's outputs (models.base.EvalOutputs)
PCA_RECON = "pca_recon"


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
    return PCA(n_components=n_components, random_state=seed).fit(images.flatten(1).cpu().numpy())


class PCABaseline(L.Callback):
    """Fits PCA once per run on the model's training images and logs ``pca/val_mse`` and
    ``pca/test_mse``: the same corrupted inputs, the same clean images and the same metric as
    ``val/mse`` and ``test/mse``, so model and PCA share a chart in TensorBoard. Where the
    model's target is a binarized copy (``data.binarize_target``), ``pca/val_mse_target`` and
    ``pca/test_mse_target`` score it against that target too, as the model's ``*/mse_target``.

    ``n_components`` defaults to the model's latent size; a float in (0, 1) picks the number of
    components that explains that share of the variance instead.
    """

    def __init__(self, n_components: int | float | None = None, seed: int = 0) -> None:
        is_count = isinstance(n_components, int) and not isinstance(n_components, bool)
        is_ratio = isinstance(n_components, float) and 0 < n_components < 1
        if n_components is not None and not (is_ratio or (is_count and n_components >= 1)):
            raise ValueError(
                "callbacks.pca.n_components must be an integer >= 1 or a variance ratio in "
                f"(0, 1), got {n_components!r}"
            )
        self.n_components = n_components
        self.seed = seed
        self.pca: PCA | None = None
        self.reconstruct: LinearReconstruction | None = None
        self.fit_seconds: float | None = None
        self.metrics: dict[str, MeanSquaredError] = {}

    def _active(self, pl_module: L.LightningModule) -> bool:
        return isinstance(pl_module, AutoencoderModule)

    def _fit(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.reconstruct is not None or not self._active(pl_module):
            return
        n = self.n_components if self.n_components is not None else pl_module.latent_dim
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
        start = time.perf_counter()
        # fitted once per run: under DDP by the first process, then sent to the others
        pca = fit_pca(images, n, self.seed) if trainer.is_global_zero else None
        self.pca = trainer.strategy.broadcast(pca, src=0)
        self.fit_seconds = time.perf_counter() - start
        dtype = torch.float32
        self.reconstruct = LinearReconstruction(
            torch.as_tensor(self.pca.components_, dtype=dtype),
            torch.as_tensor(self.pca.mean_, dtype=dtype),
        ).to(pl_module.device)
        if trainer.is_global_zero:
            log.info(
                "PCA baseline: %d components (%.1f%% of variance) fitted on %d images in %.2f s",
                self.pca.n_components_,
                100 * self.pca.explained_variance_ratio_.sum(),
                len(images),
                self.fit_seconds,
            )

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._fit(trainer, pl_module)

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._fit(trainer, pl_module)

    @torch.no_grad()
    def reconstruction(self, outputs: dict[str, Any] | None, batch: Batch) -> torch.Tensor | None:
        """PCA's reconstruction of the batch's inputs, computed once per batch: the first caller
        keeps it in the step's ``outputs``, where the others (this baseline's own MSE, per-digit
        MSE, downstream accuracy) find it. None before PCA is fitted (e.g. for a classifier)."""
        if self.reconstruct is None:
            return None
        if outputs is None:  # a model whose step returns nothing to share
            return self.reconstruct(batch["input"])
        if PCA_RECON not in outputs:
            outputs[PCA_RECON] = self.reconstruct(batch["input"])
        return outputs[PCA_RECON]

    def _update(
        self, stage: str, pl_module: L.LightningModule, outputs: dict[str, Any] | None, batch: Batch
    ) -> None:
        recon = self.reconstruction(outputs, batch)
        if recon is None:
            return
        against = {"mse": clean_image(batch)}
        if CLEAN in batch:  # a binarized target (data.binarize_target), as the model's mse_target
            against["mse_target"] = batch["target"]
        for name, image in against.items():
            key = f"{stage}_{name}"
            metric = self.metrics.get(key)
            if metric is None:
                metric = self.metrics[key] = MeanSquaredError().to(pl_module.device)
            metric.update(recon, image)

    def _log(self, stage: str, pl_module: L.LightningModule) -> None:
        for key in [k for k in self.metrics if k.startswith(f"{stage}_")]:
            # compute() reduces across DDP processes, so all log the same
            pl_module.log(f"pca/{key}", self.metrics.pop(key).compute(), sync_dist=True)
        if stage == "test" and self.pca is not None:  # what a variance ratio came to
            pl_module.log("pca/n_components", float(self.pca.n_components_), sync_dist=True)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dl_idx=0):
        self._update("val", pl_module, outputs, batch)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log("val", pl_module)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dl_idx=0):
        self._update("test", pl_module, outputs, batch)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log("test", pl_module)


def pca_reconstruction(
    trainer: L.Trainer, outputs: dict[str, Any] | None, batch: Batch
) -> torch.Tensor | None:
    """The run's PCA reconstruction of this batch (see ``PCABaseline.reconstruction``), or None
    when the run has no fitted PCA baseline."""
    pca = find_callback(trainer, PCABaseline)
    return pca.reconstruction(outputs, batch) if pca is not None else None
