"""What an evaluation is handed besides the batches: the run it evaluates and what is shared.

``Shared`` holds what several evaluations use and one builder makes once per run (the suite,
``ae_lab.evaluation.suite``): the fitted PCA and the downstream classifier. An evaluation reads
them here; none finds another evaluation to ask it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ae_lab.callbacks.common import writes_files

if TYPE_CHECKING:
    import lightning as L
    from sklearn.decomposition import PCA

    from ae_lab.models.classifier import CNNClassifier


@dataclass
class FittedPCA:
    """The run's PCA: scikit-learn's (codes: ``pca.transform``) and its torch twin
    (``reconstruct``: ``ae_lab.evaluation.pca.LinearReconstruction``), fitted once per run."""

    pca: PCA
    reconstruct: torch.nn.Module
    fit_seconds: float


@dataclass
class Shared:
    """The run's fitted PCA (None: no ``callbacks.pca``, or a model without a bottleneck) and its
    downstream classifier (None: no ``callbacks.downstream``, no evaluation of this model needs
    it, or the dataset has fewer than 2 classes; ``no_classifier`` then says why, and whether
    that was already said)."""

    pca: FittedPCA | None = None
    classifier: CNNClassifier | None = None
    no_classifier: str | None = None
    no_classifier_said: bool = False


@dataclass
class EvalContext:
    """The run at one stage (``val`` or ``test``): its trainer and model, and what is shared."""

    trainer: L.Trainer
    model: L.LightningModule
    stage: str
    shared: Shared = field(default_factory=Shared)

    @property
    def datamodule(self) -> Any:
        """The run's datamodule (``ae_lab.data.contract.ImageData``), None without one."""
        return getattr(self.trainer, "datamodule", None)

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def writes_files(self) -> bool:
        """Whether this process writes the run's files (``callbacks.common.writes_files``)."""
        return writes_files(self.trainer)

    def log(self, name: str, value: torch.Tensor | float) -> None:
        """Logs a metric that every process computed alike (reduced across DDP processes)."""
        self.model.log(name, value, sync_dist=True)
