"""The CNN classifier of the reference study, trained through the same entrypoint and data.

It answers the downstream question "do reconstructions keep what makes a digit that digit?":
a classifier trained on clean images scores the originals, the autoencoder's reconstructions and
PCA's, at the same bottleneck size.
"""

from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from annotated_types import Ge, Lt
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from ae_lab.core.errors import ConfigError
from ae_lab.models.module import Batch, LabModule, OptimizerFactory
from ae_lab.models.types import MNIST_SHAPE, ImageShape, shape_of

STAGES = ("train", "val", "test")


class CNNClassifier(LabModule):
    """conv 32 -> pool -> conv 64 -> pool -> fc 128 -> fc 10, cross-entropy, on images of
    ``image_shape`` (C, H, W); each pooling floors an odd side, as torch's does.

    It reads ``batch["input"]``, so with a ``transform`` it learns from corrupted digits.
    """

    def __init__(
        self,
        dropout: Annotated[float, Ge(0), Lt(1)] = 0.25,
        n_classes: Annotated[int, Ge(2)] = 10,
        optimizer: OptimizerFactory | None = None,
        image_shape: ImageShape = MNIST_SHAPE,
    ) -> None:
        super().__init__(optimizer)
        c, h, w = shape_of(image_shape)
        self.save_hyperparameters(
            {"dropout": dropout, "n_classes": n_classes, "image_shape": [c, h, w]}
        )
        self.image_shape = (c, h, w)
        self.net = nn.Sequential(
            nn.Conv2d(c, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(64 * (h // 4) * (w // 4), 128),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(128, n_classes),
        )
        # ModuleDict keys may not shadow nn.Module attributes such as ``train``
        self.acc = nn.ModuleDict(
            {f"{s}_acc": MulticlassAccuracy(n_classes, average="micro") for s in STAGES}
        )

    def setup(self, stage: str) -> None:
        """Refuses, in one line, data of more classes than it has outputs (a folder of images
        with more than ``n_classes`` sub-folders): their labels would have no logit."""
        super().setup(stage)
        names = getattr(getattr(self.trainer, "datamodule", None), "class_names", None) or ()
        n = self.hparams["n_classes"]
        if len(names) > n:
            raise ConfigError(
                f"model.n_classes={n} but the data has {len(names)} classes; set "
                f"model.n_classes={len(names)} (or more)"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits."""
        return self.net(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate layer (128 values after the last ReLU and dropout): what the sample
        quality's Frechet distance compares. ``head(features(x))`` is ``forward(x)``."""
        return self.net[:-1](x)

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """Class logits from ``features``."""
        return self.net[-1](features)

    def _step(self, stage: str, batch: Batch) -> torch.Tensor:
        logits = self(batch["input"])
        loss = F.cross_entropy(logits, batch["label"])
        acc = self.acc[f"{stage}_acc"]
        acc.update(logits, batch["label"])
        self.log(f"{stage}/loss", loss.detach(), on_step=False, on_epoch=True)
        self.log(f"{stage}/acc", acc, on_step=False, on_epoch=True, prog_bar=stage != "train")
        if stage == "train":
            self.log("loss", loss.detach(), prog_bar=True, logger=False)
        return loss

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self._step("train", batch)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._step("val", batch)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._step("test", batch)
