"""What every evaluation reads of one batch, built once per batch by the suite.

The test step (``ae_lab.models.base.EvalOutputs``) computed the model's reconstruction and code;
the suite adds PCA's reconstruction of the same inputs. An evaluation reads these fields and runs
neither the model nor PCA again for them, and no evaluation writes into another's inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ae_lab.data.contract import CLEAN, clean_image


@dataclass(frozen=True)
class BatchRecord:
    """One validation or test batch as the evaluations see it.

    ``input``: what the model saw (the corrupted image); ``clean``: the clean image every reported
    MSE is against (``ae_lab.data.contract.clean_image``); ``target``: what the model was asked
    to reconstruct (a binarized copy of ``clean`` under ``data.binarize_target``, then
    ``binarized`` is True, else ``clean`` itself); ``label``: class indices; ``recon`` and
    ``code``: the step's reconstruction and code (None for a model without them, the
    classifier); ``pca_recon``: PCA's reconstruction of ``input`` (None without a fitted PCA).
    """

    stage: str
    index: int
    input: torch.Tensor
    clean: torch.Tensor
    target: torch.Tensor
    label: torch.Tensor
    binarized: bool
    recon: torch.Tensor | None = None
    code: torch.Tensor | None = None
    pca_recon: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.label)


@torch.no_grad()
def build_record(
    stage: str,
    index: int,
    batch: Mapping[str, torch.Tensor],
    outputs: Mapping[str, Any] | None,
    pca: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> BatchRecord:
    """The record of batch ``index`` of ``stage``: the batch's tensors, the step's ``outputs``
    and, with ``pca`` (a fitted PCA as a module), its reconstruction of the batch's inputs."""
    outputs = outputs if isinstance(outputs, Mapping) else {}
    return BatchRecord(
        stage=stage,
        index=index,
        input=batch["input"],
        clean=clean_image(dict(batch)),
        target=batch["target"],
        label=batch["label"],
        binarized=CLEAN in batch,
        recon=outputs.get("recon"),
        code=outputs.get("code"),
        pca_recon=pca(batch["input"]) if pca is not None else None,
    )
