"""Reconstruction grids in TensorBoard and the run's figures, so a glance shows what the numbers
mean."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torchvision.utils import make_grid, save_image

from ae_lab.callbacks.common import figure_dir, log_image
from ae_lab.models.base import AutoencoderModule


class ReconstructionGrid(L.Callback):
    """Each validation epoch: a grid of clean inputs, corrupted inputs and reconstructions (one
    row each) for the first ``n_images`` images of the first validation batch; the last epoch's
    grid is also ``figures/reconstructions.png``."""

    def __init__(self, n_images: int = 8) -> None:
        self.n_images = n_images
        self.rows: torch.Tensor | None = None

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dl_idx=0):
        if (
            batch_idx != 0
            or trainer.sanity_checking
            or not isinstance(pl_module, AutoencoderModule)
        ):
            return
        n = self.n_images
        with torch.no_grad():
            recon = pl_module(batch["input"][:n])
        self.rows = torch.cat([batch["target"][:n], batch["input"][:n], recon]).float().cpu()

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if self.rows is None:
            return
        grid = make_grid(self.rows, nrow=self.n_images, padding=2, pad_value=0.5)
        log_image(trainer, "val/reconstructions", grid, trainer.global_step)
        save_image(grid, figure_dir(trainer) / "reconstructions.png")
        self.rows = None
