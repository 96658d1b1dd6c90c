"""Stops a run at its first NaN or infinite training loss instead of training on to a NaN model."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch

from ae_lab.run.errors import AeLabError


class NonFiniteLoss(AeLabError):
    """The training loss became NaN or infinite."""


class StopOnNonFiniteLoss(L.Callback):
    """Raises ``NonFiniteLoss`` naming the epoch, the step and every loss term.

    On the CPU the check reads the loss back (no tensor op, nothing to wait for), so the run stops
    at the first bad step. On an accelerator reading a value back would stall the device every
    step, so the steps' verdicts are combined on the device and read every
    ``every_n_steps`` steps and at the end of each epoch; the message then names the window.
    """

    def __init__(self, every_n_steps: int = 50) -> None:
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
