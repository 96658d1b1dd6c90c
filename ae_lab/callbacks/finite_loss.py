"""Stops a run at its first NaN or infinite training loss instead of training on to a NaN model,
and says why whenever a test metric is NaN or infinite."""

from __future__ import annotations

import logging
import math
from typing import Annotated, Any

import lightning as L
import torch
from annotated_types import Ge

from ae_lab.core.errors import AeLabError

log = logging.getLogger(__name__)


class NonFiniteLoss(AeLabError):
    """The training loss became NaN or infinite."""


class StopOnNonFiniteLoss(L.Callback):
    """Raises ``NonFiniteLoss`` naming the epoch, the step and every loss term.

    On the CPU the check reads the loss back (no tensor op, nothing to wait for), so the run stops
    at the first bad step. On an accelerator reading a value back would stall the device every
    step, so the steps' verdicts are combined on the device and read every
    ``every_n_steps`` steps and at the end of each epoch; the message then names the window.
    """

    def __init__(self, every_n_steps: Annotated[int, Ge(1)] = 50) -> None:
        self.every_n_steps = every_n_steps
        self.pending: torch.Tensor | None = None
        self.since = 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        terms = outputs if isinstance(outputs, dict) else {"loss": outputs}
        loss = terms["loss"]
        if loss.device.type == "cpu":
            if not math.isfinite(loss.item()):
                raise self.error(trainer, terms, trainer.global_step)
            return
        bad = ~torch.isfinite(loss.detach())
        if self.pending is None:
            self.pending, self.since = bad, trainer.global_step
        else:
            self.pending |= bad
        if (idx + 1) % self.every_n_steps == 0:
            self.check(trainer, terms)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check(trainer, {})

    def check(self, trainer: L.Trainer, terms: dict[str, Any]) -> None:
        pending, self.pending = self.pending, None
        if pending is not None and pending.item():
            raise self.error(trainer, terms, self.since)

    @staticmethod
    def error(trainer: L.Trainer, terms: dict[str, Any], first_step: int) -> NonFiniteLoss:
        step = trainer.global_step
        where = f"step {step}" if first_step == step else f"steps {first_step}-{step}"
        values = ", ".join(
            f"{name}={float(v):.6g}"
            for name, v in terms.items()
            if isinstance(v, torch.Tensor) and v.numel() == 1
        )
        return NonFiniteLoss(
            f"the training loss is not finite in epoch {trainer.current_epoch}, {where}"
            + (f": {values}" if values else "")
            + ". Lower optimizer.lr or clip gradients (trainer.gradient_clip_val=1.0)."
        )

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """One warning naming every test metric that is not finite, and why: the weights tested
        are not finite, or they are and the values computed from them overflow float32."""
        bad = {
            name: float(value)
            for name, value in trainer.callback_metrics.items()
            if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.isfinite()
        }
        if not bad:
            return
        weights = all(bool(p.isfinite().all()) for p in pl_module.parameters())
        why = (
            "the model's weights are finite, but values computed from them overflow (weights "
            "this large give outputs, variances or likelihoods beyond float32)"
            if weights
            else "the tested model's weights are not finite (it diverged)"
        )
        listed = ", ".join(f"{name}={value}" for name, value in sorted(bad.items()))
        log.warning("not finite: %s; %s", listed, why)
