"""Every checkpoint ae_lab reads is read as weights only: a file that would run code is refused
with one line naming it, and ae_lab's own checkpoints hold nothing that needs more."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ae_lab.core import checkpoints
from ae_lab.evaluation.downstream import DownstreamClassification
from ae_lab.run import resume
from ae_lab.run.train import train
from tests.conftest import TINY, compose_cfg


class Payload:
    """Writes a file when unpickled: what a checkpoint from a stranger could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture
def unsafe(tmp_path: Path) -> tuple[Path, Path]:
    """A Lightning-shaped checkpoint with a pickled object inside, and the file it would make."""
    marker = tmp_path / "code-ran"
    path = tmp_path / "unsafe.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"x": Payload(marker)}}, path)
    return path, marker


def test_a_checkpoint_with_a_pickled_object_is_refused_with_one_line(unsafe) -> None:
    path, marker = unsafe
    with pytest.raises(checkpoints.UnsafeCheckpoint) as err:
        resume.read_checkpoint(path, f"ckpt_path={path}")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"ckpt_path={path} holds an object")
    assert "(getattr)" in message  # what it would have called: Path.touch, pickled
    assert not marker.exists()  # and nothing of it ran


def test_the_downstream_classifier_checkpoint_is_read_as_weights_only(unsafe) -> None:
    path, marker = unsafe
    with pytest.raises(checkpoints.UnsafeCheckpoint, match=r"^callbacks\.downstream\.checkpoint="):
        DownstreamClassification(checkpoint=str(path))  # checked as it is built, before training
    assert not marker.exists()


def test_ae_labs_own_checkpoints_load_as_weights_only(tmp_path, synthetic_root) -> None:
    """Every callback's state and the hyperparameters are plain containers: the best and the
    last checkpoint of a run read as weights only and fit the model they came from."""
    run = tmp_path / "run"
    cfg = compose_cfg(
        f"data.root={synthetic_root}",
        "data.val_size=100",
        "latent=3",
        "logger=none",
        "threads=1",
        *TINY,
        run_dir=run,
    )
    train(cfg)
    for name in ("best", "last"):
        ckpt = checkpoints.load(run / "checkpoints" / f"{name}.ckpt", name)
        assert ckpt["hyper_parameters"]["latent_dim"] == 3
        assert type(ckpt["hyper_parameters"]) is dict
        assert ckpt[resume.CHECKPOINT_KEY]["model"] == "Autoencoder"
        # the composition it was built from, as plain names
        assert ckpt["hyper_parameters"]["encoder"] == "ae_lab.models.networks.DenseEncoder"
