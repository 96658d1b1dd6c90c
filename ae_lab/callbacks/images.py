"""Reconstruction grids in the run's figures and its loggers, so a glance shows what the numbers
mean."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torchvision.utils import make_grid

from ae_lab.callbacks.common import all_finite, skip, writes_files
from ae_lab.callbacks.loggers import log_figure
from ae_lab.models.base import AutoencoderModule


class ReconstructionGrid(L.Callback):
    """Each validation epoch: a grid of clean inputs, corrupted inputs and reconstructions (one
    row each) for the first ``n_images`` images of the first validation batch; the last epoch's
    grid is also ``figures/reconstructions.png``. Reconstructions that are not finite give one
    warning and no grid."""

    def __init__(self, n_images: int = 8) -> None:
        self.n_images = n_images
        self.rows: torch.Tensor | None = None

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dl_idx=0):
        if (
            batch_idx != 0
            or trainer.sanity_checking
            or not isinstance(pl_module, AutoencoderModule)
            or not writes_files(trainer)
        ):
            return
        n = self.n_images  # the reconstructions the validation step computed
        rows = (batch["target"][:n], batch["input"][:n], outputs["recon"][:n])
        self.rows = torch.cat([r.float() for r in rows]).cpu()

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        rows, self.rows = self.rows, None
        if rows is None:
            return
        if not all_finite(rows):
            skip("reconstruction grid", "the reconstructions are not finite (NaN or infinite)")
            return
        grid = make_grid(rows, nrow=self.n_images, padding=2, pad_value=0.5)
        log_figure(trainer, "val/reconstructions", grid)
