"""The LightningModule every ae_lab model builds on, and what an autoencoder's step computes.

``LabModule`` holds what any model needs from the experiment (its optimizer from the ``optimizer``
config group, its parameter count); ``Step`` and ``EvalOutputs`` are what an autoencoder's steps
compute and hand the callbacks. The autoencoders themselves are one class composed of an encoder,
a decoder and an objective (``ae_lab.models.autoencoder``); its parts see it as ``Composed``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, Protocol, TypedDict

import lightning as L
import torch
from torch import nn

from ae_lab.core.errors import AeLabError

log = logging.getLogger(__name__)

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
# a ``_partial_`` scheduler from the ``scheduler`` config group: (optimizer, total_steps=N) -> it
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]
Batch = dict[str, torch.Tensor]


class EvalOutputs(TypedDict, total=False):
    """What ``validation_step`` and ``test_step`` return for each batch: Lightning hands this dict
    to every callback's ``on_validation_batch_end`` / ``on_test_batch_end`` as ``outputs``. It
    holds what the step computed to score the model, so that no evaluation runs the model again.
    A callback may add what it computes once for the others (the PCA baseline adds its own
    reconstruction of the same inputs, ``ae_lab.evaluation.pca``)."""

    # the model's reconstruction of batch["input"]; its error is against clean_image(batch)
    recon: torch.Tensor
    code: torch.Tensor  # the code of batch["input"]; for a VAE the posterior mean


class Step(NamedTuple):
    """One forward pass over a batch: the loss terms (``loss`` is optimised, the rest logged),
    the reconstruction in [0, 1] and the code it was decoded from (a VAE's sample in training,
    its posterior mean in evaluation)."""

    terms: dict[str, torch.Tensor]
    recon: torch.Tensor
    code: torch.Tensor

    def outputs(self) -> EvalOutputs:
        """What an evaluation step hands the callbacks (see ``EvalOutputs``)."""
        return {"recon": self.recon.detach(), "code": self.code.detach()}


class LabModule(L.LightningModule):
    """Optimizer and learning-rate schedule from config (``_partial_`` objects), parameter count
    and bottleneck size. The entrypoint sets ``scheduler_factory`` from the ``scheduler`` group."""

    scheduler_factory: SchedulerFactory | None = None
    # the code size; None: the model has no bottleneck (the classifier). Runs record it.
    latent_dim: int | None = None
    # the run's seed (the entrypoint sets it), for the draws an evaluation makes (a VAE's
    # neg_elbo), which take their own generators rather than the global one training uses
    noise_seed: int = 0

    def __init__(self, optimizer: OptimizerFactory | None = None) -> None:
        super().__init__()
        self.optimizer_factory = optimizer

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def setup(self, stage: str) -> None:
        # the count reaches the loggers with the run's other hyperparameters (HParamsSummary)
        if stage == "fit":
            log.info("model %s: %s parameters", type(self).__name__, f"{self.n_params:,}")

    def configure_optimizers(self) -> torch.optim.Optimizer | dict[str, Any]:
        if self.optimizer_factory is None:
            optimizer = torch.optim.Adam(self.parameters(), lr=1e-3)
        else:
            optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        # "name": the learning rate's tag (LearningRateMonitor), beside the training metrics
        scheduler = build_schedule(self.scheduler_factory, optimizer, scheduled_steps(self.trainer))
        step_wise = {"scheduler": scheduler, "interval": "step", "name": "train/lr"}
        return {"optimizer": optimizer, "lr_scheduler": step_wise}

    def on_train_start(self) -> None:
        """A resumed run must take as many steps as the run that saved the checkpoint: its
        schedule (restored from the checkpoint) spans exactly those, and a longer run would
        fail deep in torch at the old last step, a shorter one would never finish annealing."""
        steps = scheduled_steps(self.trainer)
        for config in self.trainer.lr_scheduler_configs:
            planned = getattr(config.scheduler, "total_steps", steps)
            if planned != steps:
                raise AeLabError(
                    f"ckpt_path={self.trainer.ckpt_path} was saved by a run of {planned} "
                    f"training steps; this one has {steps}. Resume with that run's "
                    "trainer.max_epochs, trainer.limit_train_batches and data.batch_size (its "
                    "learning-rate schedule spans all of its steps), or start a new run."
                )


def scheduled_steps(trainer: L.Trainer) -> int:
    """The steps a per-batch schedule spans: exactly those this fit takes (epochs x batches, after
    limit_train_batches and gradient accumulation), and at least one, so that a fit of no steps
    (``trainer.limit_train_batches=0``: test only) builds its schedule rather than fail in it."""
    return max(1, int(trainer.estimated_stepping_batches))


def build_schedule(factory: SchedulerFactory, optimizer: torch.optim.Optimizer, steps: int) -> Any:
    """``factory``'s schedule over ``steps``. torch's OneCycleLR divides by zero where its warm-up
    is exactly one step long (``pct_start`` x steps = 1: 0.5 of 2 steps, 0.1 of 10); a warm-up
    longer by the smallest float there is builds, with the same learning rates to within that."""
    try:
        return factory(optimizer, total_steps=steps)
    except ZeroDivisionError:
        pct_start = getattr(factory, "keywords", {}).get("pct_start")
        if not isinstance(pct_start, float):
            raise
        return factory(optimizer, total_steps=steps, pct_start=math.nextafter(pct_start, 1.0))


class Composed(Protocol):
    """What an objective reads of the autoencoder that holds it (``ae_lab.models.Autoencoder``)."""

    encoder: nn.Module
    decoder: nn.Module
    latent_dim: int
    noise_seed: int
    device: torch.device
    _trainer: Any

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...
