"""Novelty detection: a model trained without some classes should reconstruct them worse.

With ``data.exclude_classes`` the training and validation splits lack those classes and the test
split keeps them (``ae_lab.data.ImageDataModule``). Every test image is scored by its
reconstruction error against the clean image, and the AUROC of that score for "an excluded class"
against "any other class" says how well the error alone tells the unseen classes apart: 0.5 is
chance, 1 a perfect separation (the protocol of the ae_bakeoff benchmark; docs/evaluation.md).
"""

from __future__ import annotations

import torch
from torchmetrics.classification import BinaryAUROC

from ae_lab.evaluation.base import Evaluation
from ae_lab.evaluation.common import skip
from ae_lab.evaluation.context import EvalContext
from ae_lab.evaluation.record import BatchRecord

# what is logged: the model's AUROC, and that of the PCA baseline at the same bottleneck size
MODEL_AUROC = "novelty/auroc"
PCA_AUROC = "pca/novelty_auroc"


def reconstruction_error(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Each image's pixel-mean squared error: the novelty score, higher for more novel."""
    return (recon.float() - target.float()).pow(2).flatten(1).mean(1)


class NoveltyAUROC(Evaluation):
    """Logs ``novelty/auroc`` and, when the PCA baseline runs, ``pca/novelty_auroc``: the AUROC
    of each test image's reconstruction error (per-image MSE against the clean image,
    ``clean_image(batch)``, also under ``data.binarize_target``: the quantity ``test/mse`` and
    ``pca/test_mse`` average) for the excluded classes (positives)
    against all others, from the batch records' reconstructions (the model's and PCA's).

    Does nothing, and logs nothing, when the run's datamodule excludes no class. Scores go to
    torchmetrics' ``BinaryAUROC`` unnormalized (an error is no logit; the AUROC depends only on
    their order) and every score is kept, so the value is exact and reduced over DDP processes.
    """

    def __init__(self) -> None:
        self.excluded: tuple[int, ...] = ()
        self.metrics: dict[str, BinaryAUROC] = {}
        # per metric: test images seen (novel, known) and scores that were not finite
        self.counts: dict[str, torch.Tensor] = {}

    def start(self, ctx: EvalContext) -> None:
        self.excluded = tuple(getattr(ctx.datamodule, "exclude_classes", ()))
        self.metrics, self.counts = {}, {}

    def update(self, ctx: EvalContext, record: BatchRecord) -> None:
        if not self.excluded:
            return
        labels = record.label
        novel = torch.isin(labels, torch.tensor(self.excluded, device=labels.device)).long()
        clean = record.clean  # what test/mse scores against, whatever the target
        self._update(MODEL_AUROC, record.recon, clean, novel)
        if record.pca_recon is not None:
            self._update(PCA_AUROC, record.pca_recon, clean, novel)

    def _update(
        self, name: str, recon: torch.Tensor, target: torch.Tensor, novel: torch.Tensor
    ) -> None:
        metric = self.metrics.get(name)
        if metric is None:
            metric = self.metrics[name] = BinaryAUROC(normalization=None).to(recon.device)
            self.counts[name] = torch.zeros(3, dtype=torch.long, device=recon.device)
        score = reconstruction_error(recon, target)
        n_novel = novel.sum()
        self.counts[name] += torch.stack(
            [n_novel, len(novel) - n_novel, (~torch.isfinite(score)).sum()]
        )
        metric.update(score, novel)

    def finish(self, ctx: EvalContext) -> None:
        for name, metric in self.metrics.items():
            # summed over DDP processes, so that all take the same branch below
            counts = ctx.trainer.strategy.reduce(self.counts[name], reduce_op="sum")
            n_novel, n_known, n_bad = (int(n) for n in counts)
            if n_novel == 0 or n_known == 0:
                skip(
                    name,
                    f"the test batches hold {n_novel} images of the excluded classes "
                    f"{list(self.excluded)} and {n_known} of the others; an AUROC needs both",
                )
            elif n_bad:
                skip(name, f"{n_bad} test images have a reconstruction error that is not finite")
            else:
                # compute() gathers every process's scores ("cat"), so all log the same value
                ctx.log(name, metric.compute())
        self.metrics, self.counts = {}, {}
