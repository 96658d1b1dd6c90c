"""One LightningModule for every autoencoder: an encoder, a decoder and an objective.

Which networks and which objective are chosen in the model's config, each by ``_target_``
(``conf/model/*.yaml``), so a conv encoder with a sparse objective, or a VAE with another
decoder, is a config and no new class. The steps, the MSE against the clean image and the logged
names are the same for all; what differs lives in the objective (``ae_lab.models.objectives``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchmetrics import MeanSquaredError

from ae_lab.core.errors import ConfigError
from ae_lab.data.contract import CLEAN, clean_image
from ae_lab.models.module import Batch, EvalOutputs, LabModule, OptimizerFactory, Step
from ae_lab.models.objectives.base import Objective
from ae_lab.models.types import MNIST_SHAPE, ImageShape, LatentDim, shape_of


def qualname(obj: object) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


class Autoencoder(LabModule):
    """``encoder`` maps images to codes, ``decoder`` codes to logits shaped as the images,
    ``objective`` says what the pair is trained for. Every reported MSE is the mean over pixels
    in [0, 1] of the reconstruction against the *clean* image, the quantity the PCA baseline
    logs.

    ``settings``: the model config's top-level keys (``hidden``, ``beta``, ...) that its parts
    read by interpolation (``hidden: ${..hidden}``), so ``model.beta=4`` still sets what it set;
    recorded with the checkpoint's hyperparameters, used for nothing else."""

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        objective: Objective,
        latent_dim: LatentDim,
        image_shape: ImageShape = MNIST_SHAPE,
        optimizer: OptimizerFactory | None = None,
        **settings: Any,
    ) -> None:
        super().__init__(optimizer)
        shape = shape_of(image_shape)
        wanted = latent_dim * objective.per_unit
        given = getattr(encoder, "out_dim", wanted)
        if given != wanted:
            raise ConfigError(
                f"model.encoder gives {given} values per image; the {type(objective).__name__} "
                f"objective needs {objective.per_unit} per code unit, {wanted} at latent="
                f"{latent_dim} (set model.encoder.per_unit={objective.per_unit})"
            )
        self.save_hyperparameters(
            {
                "latent_dim": latent_dim,
                "image_shape": list(shape),
                "encoder": qualname(encoder),
                "decoder": qualname(decoder),
                "objective": qualname(objective),
                **objective.settings(),
                **settings,
            }
        )
        self.latent_dim = latent_dim
        self.image_shape = shape
        self.encoder = encoder
        self.decoder = decoder
        self.objective = objective
        self.val_mse = MeanSquaredError()
        self.test_mse = MeanSquaredError()
        # against the model's target where that is not the clean image (data.binarize_target)
        self.val_mse_target = MeanSquaredError()
        self.test_mse_target = MeanSquaredError()
        self._train_sums: dict[str, torch.Tensor] = {}
        self._train_count = 0

    # ------------------------------------------------------------------ what the model does
    @property
    def objective_name(self) -> str:
        """The loss in a word (``mse``, ``neg_elbo``): the ``name`` of the nearest class of the
        objective that defines its loss (``terms`` or ``step``) or names it; an objective class
        that defines its own loss without naming it is named by its class name."""
        hooks = {"name", "terms", "step"}
        owner = next(c for c in type(self.objective).__mro__ if hooks & set(vars(c)))
        return str(vars(owner).get("name", owner.__name__))

    @property
    def variational(self) -> bool:
        """Whether the model has a posterior and a prior (a likelihood to estimate, samples)."""
        return self.objective.variational

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The code of ``x`` (for a VAE, the posterior mean)."""
        return self.objective.encode(self, x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] from codes."""
        return torch.sigmoid(self.decoder(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def shared_step(self, batch: Batch) -> Step:
        return self.objective.step(self, batch)

    # a variational objective's: the NLL evaluation's and the prior samples' interface
    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | x) as (mean, log-variance)."""
        return self.objective.posterior(self, x)

    def log_importance_weights(
        self,
        mu: torch.Tensor,
        logvar: torch.Tensor,
        targets: torch.Tensor,
        k: int,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """log p(x, z) - log q(z | x) as (k, B) for k draws z from q(z | x) = N(mu, exp(logvar))
        (``ae_lab.models.objectives.variational``)."""
        return self.objective.log_importance_weights(self, mu, logvar, targets, k, generator)

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` codes drawn from the prior."""
        return self.objective.sample_prior(self, n, generator)

    # ------------------------------------------------------------------ Lightning's steps
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
        self.objective.evaluating("val", self, batch_idx)
        return self._eval_step("val", batch, self.val_mse, self.val_mse_target)

    def test_step(self, batch: Batch, batch_idx: int) -> EvalOutputs:
        self.objective.evaluating("test", self, batch_idx)
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
