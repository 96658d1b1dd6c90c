"""Reconstruction grids in the run's figures and its loggers, so a glance shows what the numbers
mean."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from ae_lab.callbacks.common import all_finite, find_callback, skip, writes_files
from ae_lab.callbacks.figures import labelled_rows, run_title
from ae_lab.callbacks.loggers import log_figure
from ae_lab.callbacks.pca import PCABaseline
from ae_lab.data.contract import CLEAN, clean_image
from ae_lab.models.base import AutoencoderModule


class ReconstructionGrid(L.Callback):
    """Each validation epoch: labelled rows of the first ``n_images`` images of the first
    validation batch: the original (clean) images, the binarized targets where the model's target
    is one (``data.binarize_target``), the model's input (after the transform), its
    reconstruction and, when the run has a PCA baseline, PCA's. The title names the run's config
    (``figures.run_title``). The last epoch's grid is also ``figures/reconstructions.png``.
    A test with no validation before it (``ae-lab-eval``) draws the same grid of the first test
    batch, so an evaluation under any corruption shows what its inputs and reconstructions look
    like. Reconstructions that are not finite give one warning and no grid."""

    def __init__(self, n_images: int = 8) -> None:
        self.n_images = n_images
        self.rows: list[tuple[str, torch.Tensor]] | None = None
        self.validated = False  # a validation grid was drawn: the test adds none

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dl_idx=0):
        if not trainer.sanity_checking:
            self._keep(trainer, pl_module, outputs, batch, batch_idx)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dl_idx=0):
        if not self.validated:
            self._keep(trainer, pl_module, outputs, batch, batch_idx)

    def _keep(self, trainer: L.Trainer, pl_module: Any, outputs: Any, batch: Any, idx: int) -> None:
        if idx != 0 or not isinstance(pl_module, AutoencoderModule) or not writes_files(trainer):
            return
        n = self.n_images  # the reconstructions the validation or test step computed
        rows = [("original", clean_image(batch))]
        if CLEAN in batch:
            rows.append(("target (binarized)", batch["target"]))
        rows += [("model input", batch["input"]), ("reconstruction", outputs["recon"])]
        baseline = find_callback(trainer, PCABaseline)
        pca = baseline.reconstruction(outputs, batch) if baseline is not None else None
        if pca is not None:
            rows.append((f"PCA, {baseline.pca.n_components_} components", pca))
        self.rows = [(label, images[:n].float().cpu()) for label, images in rows]

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        epoch = trainer.current_epoch + 1  # counted from 1, as the learning curves count
        title = f"{run_title(trainer, pl_module)}: validation images, epoch {epoch}"
        if self._draw(trainer, "val/reconstructions", title):
            self.validated = True

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if not self.validated:  # the trained epochs are not this test's: no epoch count
            self._draw(
                trainer, "test/reconstructions", f"{run_title(None, pl_module)}: test images"
            )

    def _draw(self, trainer: L.Trainer, tag: str, title: str) -> bool:
        rows, self.rows = self.rows, None
        if rows is None:
            return False
        if not all_finite(torch.cat([images for _, images in rows])):
            skip("reconstruction grid", "the reconstructions are not finite (NaN or infinite)")
            return False
        log_figure(trainer, tag, labelled_rows(rows, title))
        return True
