"""An accuracy that refuses to score images that are not finite, for every evaluation that
counts classes (the downstream accuracies, the linear probe)."""

from __future__ import annotations

import torch
from torchmetrics.classification import MulticlassAccuracy


class FiniteAccuracy(MulticlassAccuracy):
    """Accuracy of class scores, NaN when any image's scores are not finite: an image that is not
    finite (a diverged model's reconstruction) has no class, and the class its NaN scores happen
    to pick is no result. The count of such images is a state, reduced across DDP processes
    like the hits, so every process computes the same value."""

    def __init__(self, num_classes: int) -> None:
        super().__init__(num_classes, average="micro")
        self.add_state("nonfinite", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        self.nonfinite += (~torch.isfinite(preds)).flatten(1).any(1).sum()
        super().update(preds, target)

    def compute(self) -> torch.Tensor:
        if self.nonfinite > 0:
            return torch.tensor(float("nan"), device=self.nonfinite.device)
        return super().compute()
