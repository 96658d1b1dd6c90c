"""Test MSE per class (per digit on MNIST), for the model and for PCA at the same bottleneck size.

An average hides which classes a model finds hard; the reference study's per-digit table showed
the autoencoder's advantage over PCA is largest on the digits with the most varied strokes.
"""

from __future__ import annotations

import logging
from typing import Annotated

import torch
from annotated_types import Ge
from torchmetrics import Metric

from ae_lab.data.contract import label_names
from ae_lab.evaluation.base import Evaluation
from ae_lab.evaluation.context import EvalContext
from ae_lab.evaluation.record import BatchRecord

log = logging.getLogger(__name__)


class PerClassMSE(Metric):
    """Per class, the mean over its images of each image's pixel-mean squared error, and the
    number of its images: ``compute()`` gives ``(means, counts)``, a mean of 0/0 (NaN) for a
    class with no image. Sums and counts are the states, so under DDP torchmetrics adds up every
    process's share before the division."""

    full_state_update = False
    higher_is_better = False

    def __init__(self, n_classes: int = 10, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_classes = n_classes
        zeros = torch.zeros(n_classes, dtype=torch.float64)
        self.add_state("sums", default=zeros.clone(), dist_reduce_fx="sum")
        self.add_state("counts", default=zeros.clone(), dist_reduce_fx="sum")

    def update(self, recon: torch.Tensor, target: torch.Tensor, labels: torch.Tensor) -> None:
        per_image = (recon.float() - target.float()).pow(2).flatten(1).mean(1).double()
        self.sums.index_add_(0, labels.long(), per_image)
        self.counts.index_add_(0, labels.long(), torch.ones_like(per_image))

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.sums / self.counts, self.counts


class PerDigitMSE(Evaluation):
    """Logs ``test/mse_digit/<k>`` and, when the run has a PCA baseline, ``pca/test_mse_digit/<k>``
    for each class index ``k`` (the names keep "digit" on every dataset), from the batch records'
    reconstructions (no model run of its own), and a table of them by the dataset's class names
    in the run's log.

    Every test image counts equally, so the count-weighted mean of the per-class values is
    ``test/mse`` (and ``pca/test_mse``). Classes absent from the test batches are not logged.
    ``n_classes``: None for the dataset's number of classes.
    """

    def __init__(self, n_classes: Annotated[int, Ge(1)] | None = None) -> None:
        self.n_classes = n_classes
        self.names: list[str] = []
        self.metrics: dict[str, PerClassMSE] = {}

    def start(self, ctx: EvalContext) -> None:
        self.metrics = {}
        self.names = label_names(ctx.datamodule, self.n_classes)

    def _update(self, prefix: str, recon: torch.Tensor, record: BatchRecord) -> None:
        metric = self.metrics.get(prefix)
        if metric is None:
            metric = self.metrics[prefix] = PerClassMSE(len(self.names)).to(recon.device)
        metric.update(recon, record.clean, record.label)

    def update(self, ctx: EvalContext, record: BatchRecord) -> None:
        self._update("test/mse_digit", record.recon, record)
        if record.pca_recon is not None:
            self._update("pca/test_mse_digit", record.pca_recon, record)

    def finish(self, ctx: EvalContext) -> None:
        table: dict[str, list[float]] = {}
        counts = None
        for prefix, metric in self.metrics.items():
            means, counts = metric.compute()  # every process's share of the test set (DDP)
            for k in range(len(self.names)):
                if counts[k] > 0:
                    value = means[k].float()
                    ctx.log(f"{prefix}/{k}", value)  # equal on all
                    table.setdefault(prefix, []).append(float(value))
        self.metrics = {}
        if counts is not None and ctx.writes_files:
            present = [name for name, n in zip(self.names, counts, strict=True) if n > 0]
            log.info("test MSE per class:\n%s", format_table(present, table))


def format_table(names: list[str], columns: dict[str, list[float]]) -> str:
    """One row per class: its name, then each column's value (model, and PCA when it ran)."""
    heads = {"test/mse_digit": "model", "pca/test_mse_digit": "PCA"}
    width = max(len(name) for name in ["class", *names])
    rows = ["  ".join(["class".ljust(width), *(f"{heads.get(c, c):>9}" for c in columns)])]
    for i, name in enumerate(names):
        rows.append("  ".join([name.ljust(width), *(f"{v[i]:9.6f}" for v in columns.values())]))
    return "\n".join(rows)
