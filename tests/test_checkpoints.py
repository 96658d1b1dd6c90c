"""The checkpoint resume reads: written every epoch whatever the callbacks, never left half
written; and the command that continues a stopped run, quoted for the shell and for Hydra."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.demos.boring_classes import BoringModel

from ae_lab.core.checkpoints import AtomicCheckpointIO, add_last_checkpoint, use_atomic_writes
from ae_lab.run.stopping import shell_override
from tests.conftest import quiet_trainer


def test_a_checkpoint_write_cut_short_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    target = tmp_path / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"epoch": 0, "w": torch.arange(1000.0)}, target)

    def cut_short(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 the first bytes of a checkpoint")
        # the bytes go to another file in the same folder, which a rename puts in place
        assert Path(f.name).parent == target.parent and Path(f.name) != target
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", cut_short)
    with pytest.raises(OSError):
        io.save_checkpoint({"epoch": 1, "w": torch.zeros(1000)}, target)
    monkeypatch.undo()
    assert torch.load(target, weights_only=True)["epoch"] == 0
    assert list(target.parent.iterdir()) == [target]  # no partial file left behind
    io.save_checkpoint({"epoch": 1}, target)
    assert torch.load(target, weights_only=True)["epoch"] == 1


def test_the_trainer_saves_through_atomic_writes():
    trainer = quiet_trainer()
    use_atomic_writes(trainer)
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)


class Worsening(BoringModel):
    def on_validation_epoch_end(self) -> None:
        self.log("worse", float(self.current_epoch))  # epoch 0 stays the best


def test_last_ckpt_is_every_epochs_end_whatever_the_group(tmp_path):
    """Lightning's own ``save_last`` writes ``last.ckpt`` only with a new best model: here it
    would stay at epoch 0. The group's ``save_last`` is left to the run's own ``last.ckpt``."""
    best = ModelCheckpoint(
        dirpath=tmp_path / "checkpoints", filename="best", monitor="worse", save_last=True
    )
    callbacks = [best]
    add_last_checkpoint(callbacks, tmp_path)
    trainer = quiet_trainer(
        max_epochs=3,
        limit_train_batches=2,
        limit_val_batches=1,
        callbacks=callbacks,
        enable_checkpointing=True,
    )
    trainer.fit(Worsening())
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["epoch"] == 2
    assert torch.load(best.best_model_path, weights_only=False)["epoch"] == 0
    files = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert files == ["best.ckpt", "last.ckpt"]


@pytest.mark.parametrize(
    "run_dir",
    [
        "outputs/2026-01-01/12-00-00",
        "/data/my runs/ae",
        "/data/a,b=c",
        "/data/it's",
        '/data/say "hi" (twice)',
        "/data/back\\slash\\",
        "run",
        "null",
    ],
)
def test_the_continue_command_is_quoted_for_the_shell_and_for_hydra(run_dir):
    word = shell_override("hydra.run.dir", run_dir)
    [arg] = shlex.split(word)  # one shell word, whatever the folder's name
    assert OverridesParser.create().parse_override(arg).value() == run_dir
