"""Settings out of range, damaged MNIST files and non-finite losses are caught with one message."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from hydra import compose, initialize_config_dir

from ae_lab import resolvers
from ae_lab.callbacks.finite_loss import NonFiniteLoss, StopOnNonFiniteLoss
from ae_lab.data.mnist import check_raw_file
from ae_lab.errors import AeLabError, ConfigError
from ae_lab.train import CONFIG_DIR
from ae_lab.validation import check_config, problems
from tests.conftest import AUTOENCODERS, write_mnist

resolvers.register()


def compose_cfg(*overrides: str):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.mark.parametrize(
    "choice",
    [f"model={m}" for m in (*AUTOENCODERS, "classifier")]
    + [f"transform={t}" for t in ("gaussian", "mask", "binarize")],
)
def test_every_shipped_config_is_valid(choice):
    assert problems(compose_cfg(choice)) == []


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["latent=0"], "latent"),
        (["latent=2.5"], "latent"),
        (["data.eval_batch_size=0"], "data.eval_batch_size"),
        (["data.val_size=0"], "data.val_size"),
        (["optimizer.weight_decay=-0.1"], "optimizer.weight_decay"),
        (["transform=gaussian", "transform.std=-1"], "transform.std"),
        (["transform=mask", "transform.p=1"], "transform.p"),
        (["transform=binarize", "transform.threshold=1.5"], "transform.threshold"),
        (["trainer.max_epochs=0"], "trainer.max_epochs"),
        (["model=vae", "model.beta=-1"], "model.beta"),
        (["model=sparse_ae", "model.rho=1.5"], "model.rho"),
        (["model=sparse_ae", "model.weight=-1"], "model.weight"),
        (["model=sparse_ae", "model.sparsity=l2"], "model.sparsity"),
        (["model=contractive_ae", "model.activation=tanh"], "model.activation"),
    ],
)
def test_a_value_out_of_range_is_named_with_what_is_allowed(overrides, key):
    found = problems(compose_cfg(*overrides))
    assert len(found) == 1 and found[0].startswith(f"{key} must be ")
    assert f"got {overrides[-1].split('=')[1]}" in found[0].replace("'", "")


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as err:
        check_config(compose_cfg("data.batch_size=0", "optimizer.lr=-1"))
    assert str(err.value).splitlines() == [
        "data.batch_size must be an integer >= 1, got 0",
        "optimizer.lr must be a number > 0 (the learning rate), got -1",
    ]


def test_a_truncated_idx_file_is_named(tmp_path):
    raw = write_mnist(tmp_path, n_train=20, n_test=10) / "MNIST" / "raw"
    path = raw / "train-images-idx3-ubyte"
    check_raw_file(str(path), path.stat().st_size, path.stat().st_mtime_ns)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(AeLabError, match="train-images-idx3-ubyte is damaged: it has"):
        check_raw_file(str(path), path.stat().st_size, path.stat().st_mtime_ns)


def test_the_first_non_finite_loss_stops_the_run_naming_its_terms():
    stop = StopOnNonFiniteLoss()
    trainer = SimpleNamespace(global_step=7, current_epoch=2)
    finite = {"loss": torch.tensor(0.5), "kl": torch.tensor(0.1)}
    stop.on_train_batch_end(trainer, None, finite, None, 0)
    bad = {"loss": torch.tensor(float("nan")), "kl": torch.tensor(float("inf"))}
    with pytest.raises(NonFiniteLoss, match="epoch 2, step 7: loss=nan, kl=inf"):
        stop.on_train_batch_end(trainer, None, bad, None, 1)
