"""The LightningModules every ae_lab model builds on.

``LabModule`` holds what any model needs from the experiment (its optimizer from the ``optimizer``
config group, its parameter count). ``AutoencoderModule`` holds everything the autoencoder variants
share: the train/val/test steps, the MSE against the clean image, and the logged names. A variant
only sets ``self.encoder`` and ``self.decoder`` and, if its objective differs, ``loss_terms``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, TypedDict

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanSquaredError

from ae_lab.core.errors import AeLabError
from ae_lab.data.contract import CLEAN, clean_image

log = logging.getLogger(__name__)

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
# a ``_partial_`` scheduler from the ``scheduler`` config group: (optimizer, total_steps=N) -> it
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]
Batch = dict[str, torch.Tensor]


class EvalOutputs(TypedDict, total=False):
    """What ``validation_step`` and ``test_step`` return for each batch: Lightning hands this dict
    to every callback's ``on_validation_batch_end`` / ``on_test_batch_end`` as ``outputs``. It
    holds what the step computed to score the model, so that no evaluation runs the model again:
    the evaluation suite reads it, once per batch, into the record every evaluation reads
    (``ae_lab.evaluation.record``), and nothing writes into it."""

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


class AutoencoderModule(LabModule):
    """Shared steps and metrics. Every reported MSE is the mean over pixels in [0, 1] of the
    reconstruction against the *clean* image, the same quantity the PCA baseline logs."""

    # what ``loss`` is, in a word: runs whose objectives differ (an MSE near 0.02, a VAE's
    # negative ELBO near 100) never share a loss chart in TensorBoard (ae_lab.callbacks.comparison);
    # a variant that defines its own ``loss_terms`` names its objective here too
    objective = "mse"

    def __init__(self, latent_dim: int, optimizer: OptimizerFactory | None = None) -> None:
        super().__init__(optimizer)
        self.save_hyperparameters(ignore=["optimizer"])
        self.latent_dim = latent_dim
        self.encoder: nn.Module
        self.decoder: nn.Module
        self.val_mse = MeanSquaredError()
        self.test_mse = MeanSquaredError()
        # against the model's target where that is not the clean image (data.binarize_target)
        self.val_mse_target = MeanSquaredError()
        self.test_mse_target = MeanSquaredError()
        self._train_sums: dict[str, torch.Tensor] = {}
        self._train_count = 0

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code of ``x`` (for a VAE, the posterior mean)."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] from codes."""
        return torch.sigmoid(self.decoder(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def shared_step(self, batch: Batch) -> Step:
        code = self.encode(batch["input"])
        logits = self.decoder(code)
        recon = torch.sigmoid(logits)
        return Step(self.loss_terms(batch, code, logits, recon), recon, code)

    def loss_terms(
        self, batch: Batch, code: torch.Tensor, logits: torch.Tensor, recon: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        return {"loss": F.mse_loss(recon, batch["target"])}

    def training_step(self, batch: Batch, batch_idx: int) -> dict[str, torch.Tensor]:
        # "loss" is optimised; Lightning hands the dict to on_train_batch_end
        return self.shared_step(batch).terms

    def on_train_batch_end(
        self, outputs: dict[str, torch.Tensor], batch: Batch, batch_idx: int
    ) -> None:
        # A self.log call per step costs more than this model's forward pass on a CPU, so the
        # train/* epoch means are summed on the device and logged once per epoch (no sync per
        # step), and the running loss is logged only when the progress bar will show it.
        # Kept out of training_step so that compile=true compiles only the computation.
        n = len(batch["target"])
        sums = self._train_sums
        for name, value in outputs.items():
            if name in sums:
                sums[name].add_(value.detach(), alpha=n)  # one in-place op per term and step
            else:
                sums[name] = value.detach().float() * n
        self._train_count += n
        bar = self._trainer.progress_bar_callback if self._trainer is not None else None
        if _bar_shows(bar, batch_idx):
            self.log("loss", outputs["loss"].detach(), prog_bar=True, logger=False)

    def on_train_epoch_end(self) -> None:
        for name, total in self._train_sums.items():
            self.log(f"train/{name}", total / self._train_count, sync_dist=True)
        self._train_sums, self._train_count = {}, 0

    def validation_step(self, batch: Batch, batch_idx: int) -> EvalOutputs:
        return self._eval_step("val", batch, self.val_mse, self.val_mse_target)

    def test_step(self, batch: Batch, batch_idx: int) -> EvalOutputs:
        return self._eval_step("test", batch, self.test_mse, self.test_mse_target)

    def _eval_step(
        self, stage: str, batch: Batch, mse: MeanSquaredError, mse_target: MeanSquaredError
    ) -> EvalOutputs:
        step = self.shared_step(batch)
        mse.update(step.recon, clean_image(batch))
        self._log_terms(stage, step.terms)
        self.log(f"{stage}/mse", mse, prog_bar=True)
        if CLEAN in batch:  # a binarized target: the error against what the model was fitted to
            mse_target.update(step.recon, batch["target"])
            self.log(f"{stage}/mse_target", mse_target)
        return step.outputs()

    def _log_terms(self, stage: str, terms: dict[str, torch.Tensor]) -> None:
        # Epoch means under the documented names (val/loss, test/kl, ...)
        for name, value in terms.items():
            self.log(
                f"{stage}/{name}", value.detach(), on_step=False, on_epoch=True, sync_dist=True
            )


def _bar_shows(bar: object, batch_idx: int) -> bool:
    """Whether the progress bar was just redrawn: ae_lab's bar redraws by time and says so
    (``ae_lab.callbacks.progress_and_summary.ProgressBar.shows_step``), Lightning's every
    ``refresh_rate``."""
    shows = getattr(bar, "shows_step", None)
    if shows is not None:
        return shows(batch_idx)
    every = getattr(bar, "refresh_rate", 0)
    return bool(every) and (batch_idx + 1) % every == 0
