"""The training step does no per-step logging work, yet logs the same epoch means as before."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from ae_lab.data import MNISTDataModule
from ae_lab.models import DenseAE, DenseVAE


class StepRecorder(L.Callback):
    def __init__(self) -> None:
        self.steps: list[tuple[dict[str, float], int]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        values = {k: float(v.detach()) for k, v in outputs.items()}
        self.steps.append((values, len(batch["target"])))


def fit(model: L.LightningModule, root, refresh_rate: int) -> tuple[L.Trainer, StepRecorder]:
    recorder = StepRecorder()
    trainer = L.Trainer(
        max_epochs=2,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[recorder, L.pytorch.callbacks.TQDMProgressBar(refresh_rate=refresh_rate)],
        accelerator="cpu",
    )
    dm = MNISTDataModule(root=str(root), batch_size=64, val_size=100, download=False)
    trainer.fit(model, datamodule=dm)
    return trainer, recorder


def test_train_terms_are_batch_weighted_epoch_means(synthetic_root):
    torch.manual_seed(0)
    trainer, recorder = fit(DenseVAE(latent_dim=4), synthetic_root, refresh_rate=3)

    last_epoch = recorder.steps[len(recorder.steps) // 2 :]  # 500 images: 8 batches per epoch
    assert len(last_epoch) == 8 and last_epoch[-1][1] == 500 - 7 * 64
    names = last_epoch[0][0].keys()
    assert {"loss", "kl"} <= set(names)
    for name in names:
        expected = sum(v[name] * n for v, n in last_epoch) / sum(n for _, n in last_epoch)
        assert float(trainer.callback_metrics[f"train/{name}"]) == pytest.approx(expected, rel=1e-6)
    assert "loss" in trainer.progress_bar_metrics  # the running loss still reaches the bar


def test_running_loss_is_logged_only_when_the_bar_refreshes(synthetic_root):
    calls: list[str] = []

    class Counting(DenseAE):
        def log(self, name, *args, **kwargs):
            calls.append(name)
            super().log(name, *args, **kwargs)

    fit(Counting(latent_dim=4), synthetic_root, refresh_rate=4)
    # per epoch: 8 batches -> the bar refreshes at steps 4 and 8; train/loss once at epoch end
    assert calls.count("loss") == 2 * 2
    assert calls.count("train/loss") == 2
