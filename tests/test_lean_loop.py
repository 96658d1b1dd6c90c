"""The training step does no per-step work it can avoid, yet logs the same values as before."""

from __future__ import annotations

import json
import os

import lightning as L
import pytest
import torch

from ae_lab.data import MNISTDataModule
from ae_lab.models import DenseAE, DenseVAE
from tests.conftest import TINY, quiet_trainer, run_in_process


class StepRecorder(L.Callback):
    def __init__(self) -> None:
        self.steps: list[tuple[dict[str, float], int]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        values = {k: float(v.detach()) for k, v in outputs.items()}
        self.steps.append((values, len(batch["target"])))


def fit(model: L.LightningModule, root, refresh_rate: int) -> tuple[L.Trainer, StepRecorder]:
    recorder = StepRecorder()
    trainer = quiet_trainer(
        max_epochs=2,
        limit_val_batches=0,
        enable_progress_bar=True,
        callbacks=[recorder, L.pytorch.callbacks.TQDMProgressBar(refresh_rate=refresh_rate)],
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


def test_test_stage_callbacks_join_for_the_test_only(tmp_path, synthetic_root):
    """The evaluation callbacks that act at test time are not dispatched to on training steps,
    and still run (and log) at test time, ahead of the checkpoint callback."""
    run_in_process(
        *TINY,
        "data.val_size=100",
        "+callbacks.probe._target_=tests.probes.CallbackProbe",
        run_dir=tmp_path / "run",
        data_root=synthetic_root,
    )
    seen = json.loads((tmp_path / "run" / "callbacks_seen.json").read_text())
    # the evaluations are no callbacks: one suite runs them (PCA and the grid act at validation,
    # so it trains too; with no evaluation that validates it joins for the test only)
    test_only = {"PerDigitMSE", "Generation", "LatentMap", "PCABaseline"}
    assert not test_only & (set(seen["fit"]) | set(seen["test"]))
    assert seen["fit"].count("EvaluationSuite") == seen["test"].count("EvaluationSuite") == 1
    assert {"StopOnNonFiniteLoss", "CallbackProbe"} <= set(seen["fit"])
    assert seen["test"][-1] == seen["fit"][-1] == "LastCheckpoint"
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "test/mse_digit/7" in metrics
    assert (tmp_path / "run" / "figures").is_dir()


def test_resident_batches_skip_lightnings_device_move(synthetic_root):
    dm = MNISTDataModule(root=str(synthetic_root), batch_size=8, val_size=100, download=False)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert dm.transfer_batch_to_device(batch, torch.device("cpu"), 0) is batch
    moved = dm.transfer_batch_to_device(batch, torch.device("meta"), 0)
    assert moved[0].device.type == moved[1].device.type == "meta"
    assert moved[2] == batch[2]


@pytest.mark.parametrize("user_value", [None, "1"])
def test_cpu_runs_use_torchs_own_cuda_check_unless_the_user_set_one(monkeypatch, user_value):
    from ae_lab.run import process

    monkeypatch.setattr(process, "_user_cuda_check", user_value)
    monkeypatch.setenv("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # as importing Lightning leaves it
    process.use_default_cuda_check()
    assert os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") == user_value
