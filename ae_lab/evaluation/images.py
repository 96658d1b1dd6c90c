"""Reconstruction grids in the run's figures and its loggers, so a glance shows what the numbers
mean."""

from __future__ import annotations

from typing import Annotated

import lightning as L
import torch
from annotated_types import Ge

from ae_lab.callbacks.loggers import log_figure
from ae_lab.evaluation.base import Evaluation
from ae_lab.evaluation.common import all_finite, skip
from ae_lab.evaluation.context import EvalContext
from ae_lab.evaluation.figures import labelled_rows, run_title
from ae_lab.evaluation.record import BatchRecord


class ReconstructionGrid(Evaluation):
    """Each validation epoch: labelled rows of the first ``n_images`` images of the first
    validation batch: the original (clean) images, the binarized targets where the model's target
    is one (``data.binarize_target``), the model's input (after the transform), its
    reconstruction and, when the run has a PCA baseline, PCA's. The title names the run's config
    (``figures.run_title``). The last epoch's grid is also ``figures/reconstructions.png``.
    A test with no validation before it (``ae-lab-eval``) draws the same grid of the first test
    batch, so an evaluation under any corruption shows what its inputs and reconstructions look
    like. Reconstructions that are not finite give one warning and no grid."""

    stages = ("val", "test")

    def __init__(self, n_images: Annotated[int, Ge(1)] = 8) -> None:
        self.n_images = n_images
        self.rows: list[tuple[str, torch.Tensor]] | None = None
        self.validated = False  # a validation grid was drawn: the test adds none

    def update(self, ctx: EvalContext, record: BatchRecord) -> None:
        if ctx.stage == "val" and ctx.trainer.sanity_checking:
            return
        if ctx.stage == "test" and self.validated:
            return
        if record.index != 0 or not ctx.writes_files:
            return
        n = self.n_images  # the reconstructions the validation or test step computed
        rows = [("original", record.clean)]
        if record.binarized:
            rows.append(("target (binarized)", record.target))
        rows += [("model input", record.input), ("reconstruction", record.recon)]
        pca = ctx.shared.pca
        if record.pca_recon is not None and pca is not None:
            rows.append((f"PCA, {pca.pca.n_components_} components", record.pca_recon))
        self.rows = [(label, images[:n].float().cpu()) for label, images in rows]

    def finish(self, ctx: EvalContext) -> None:
        trainer, pl_module = ctx.trainer, ctx.model
        if ctx.stage == "val":
            epoch = trainer.current_epoch + 1  # counted from 1, as the learning curves count
            title = f"{run_title(trainer, pl_module)}: validation images, epoch {epoch}"
            if self._draw(trainer, "val/reconstructions", title):
                self.validated = True
        elif not self.validated:  # the trained epochs are not this test's: no epoch count
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
