"""Test MSE per class (per digit on MNIST), for the model and for PCA at the same bottleneck size.

An average hides which classes a model finds hard; the reference study's per-digit table showed
the autoencoder's advantage over PCA is largest on the digits with the most varied strokes.
"""

from __future__ import annotations

import logging

import lightning as L
import torch

from ae_lab.callbacks.common import TestStageCallback, find_callback, writes_files
from ae_lab.callbacks.pca import PCABaseline
from ae_lab.data.contract import label_names
from ae_lab.models.base import AutoencoderModule

log = logging.getLogger(__name__)


def squared_error_by_class(
    recon: torch.Tensor, target: torch.Tensor, labels: torch.Tensor, n_classes: int = 10
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class: the sum over its images of each image's pixel-mean squared error; its count."""
    per_image = (recon - target).pow(2).flatten(1).mean(1).double()
    sums = torch.zeros(n_classes, dtype=torch.float64, device=recon.device)
    counts = torch.zeros(n_classes, dtype=torch.float64, device=recon.device)
    sums.index_add_(0, labels.long(), per_image)
    counts.index_add_(0, labels.long(), torch.ones_like(per_image))
    return sums, counts


class PerDigitMSE(TestStageCallback):
    """Logs ``test/mse_digit/<k>`` and, when the PCA baseline runs, ``pca/test_mse_digit/<k>``
    for each class index ``k`` (the names keep "digit" on every dataset), and a table of them by
    the dataset's class names in the run's log.

    Every test image counts equally, so the count-weighted mean of the per-class values is
    ``test/mse`` (and ``pca/test_mse``). Classes absent from the test batches are not logged.
    ``n_classes``: None for the dataset's number of classes.
    """

    def __init__(self, n_classes: int | None = None) -> None:
        self.n_classes = n_classes
        self.names: list[str] = []
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: torch.Tensor | None = None

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.sums, self.counts = {}, None
        self.names = label_names(getattr(trainer, "datamodule", None), self.n_classes)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dl_idx=0):
        if not isinstance(pl_module, AutoencoderModule):
            return
        recons = {"test/mse_digit": pl_module(batch["input"])}
        pca = find_callback(trainer, PCABaseline)
        if pca is not None and pca.reconstruct is not None:
            recons["pca/test_mse_digit"] = pca.reconstruct(batch["input"])
        for prefix, recon in recons.items():
            sums, counts = squared_error_by_class(
                recon, batch["target"], batch["label"], len(self.names)
            )
            self.sums[prefix] = self.sums.get(prefix, 0) + sums
        self.counts = counts if self.counts is None else self.counts + counts

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.counts is None:
            return
        # every process's share of the test set (DDP); unchanged on one device
        counts = trainer.strategy.reduce(self.counts, reduce_op="sum")
        table: dict[str, list[float]] = {}
        for prefix, sums in self.sums.items():
            sums = trainer.strategy.reduce(sums, reduce_op="sum")
            for k in range(len(self.names)):
                if counts[k] > 0:
                    value = (sums[k] / counts[k]).float()
                    pl_module.log(f"{prefix}/{k}", value, sync_dist=True)  # equal on all
                    table.setdefault(prefix, []).append(float(value))
        if writes_files(trainer):
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
