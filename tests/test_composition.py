"""Models by composition: every conf/model/*.yaml builds one tiny model for images of any shape
that trains and tests; new combinations of encoder, decoder and objective are configs alone; and
the composed models are the very networks the earlier classes built."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ae_lab.core.errors import AeLabError
from ae_lab.models import (
    Autoencoder,
    CNNClassifier,
    Contractive,
    ConvDecoder,
    ConvEncoder,
    DenseDecoder,
    is_variational,
)
from ae_lab.run import resume
from tests.conftest import MODEL_CONFIGS, MODELS, compose_cfg, quiet_trainer

SHAPES = [(1, 28, 28), (3, 32, 32), (1, 20, 24)]
LATENT = 4


# single-batch steps gain nothing from threads, and the suite shares its cores
pytestmark = pytest.mark.usefixtures("one_thread")


class Images(Dataset):
    """Binary images of one shape with labels, in the datamodule's batch format (binary, so a
    variational model's neg_elbo is scored too)."""

    def __init__(self, shape: tuple[int, ...], n: int = 16, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.x = (torch.rand(n, *shape, generator=gen) > 0.5).float()
        self.y = torch.randint(0, 10, (n,), generator=gen)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input": self.x[i], "target": self.x[i], "label": self.y[i]}


def small(name: str) -> list[str]:
    """Overrides that keep a model small, for the keys its config has."""
    cfg = MODEL_CONFIGS[name]
    out = [f"model.{k}={v}" for k, v in (("hidden", "[16]"), ("channels", "[4,8]")) if k in cfg]
    return out + (["model.n_pseudo=3"] if "n_pseudo" in cfg else [])


def build(*overrides: str, shape: tuple[int, int, int] = (1, 28, 28)) -> L.LightningModule:
    """The model as the entrypoint builds it, for data of ``shape`` (``data.image_shape``, which
    every model config reads)."""
    cfg = compose_cfg(
        f"latent={LATENT}", f"data.image_shape=[{','.join(map(str, shape))}]", *overrides
    )
    return instantiate(cfg.model, optimizer=instantiate(cfg.optimizer), _convert_="all")


def train_and_test(model: L.LightningModule, shape: tuple[int, ...]) -> dict[str, float]:
    """One training step, one validation and one test batch; the test's metrics."""
    loader = DataLoader(Images(shape), batch_size=8)
    trainer = quiet_trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=1)
    trainer.fit(model, train_dataloaders=loader, val_dataloaders=loader)
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))
    return {k: float(v) for k, v in trainer.test(model, loader, verbose=False)[0].items()}


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", MODELS)
def test_every_model_config_trains_and_tests_on_images_of_any_shape(name, shape):
    torch.manual_seed(0)
    model = build(f"model={name}", *small(name), shape=shape)
    metrics = train_and_test(model, shape)
    assert all(math.isfinite(v) for v in metrics.values()), metrics
    x = Images(shape, n=3, seed=1).x
    model.eval()
    with torch.no_grad():
        if isinstance(model, CNNClassifier):
            assert model(x).shape == (3, 10) and 0 <= metrics["test/acc"] <= 1
            return
        assert model(x).shape == x.shape
        assert model.encode(x).shape == (3, LATENT)
    assert model.image_shape == shape and model.hparams["image_shape"] == list(shape)
    assert {"test/loss", "test/mse"} <= set(metrics)
    if is_variational(model):
        assert metrics["test/neg_elbo"] > 0


def test_a_conv_side_the_stages_do_not_halve_is_padded_and_cropped_back():
    torch.manual_seed(0)
    model = build("model=conv_ae", "model.channels=[4,8,8]", shape=(1, 30, 27)).eval()
    x = torch.rand(2, 1, 30, 27)
    with torch.no_grad():
        assert model(x).shape == x.shape


# ------------------------------------------------------------------ new combinations, config alone
CONV_SPARSE = """\
# a conv encoder with the sparse objective
_target_: ae_lab.models.Autoencoder
latent_dim: ${latent}
image_shape: ${data.image_shape}
channels: [4, 8]
sparsity: kl
rho: 0.05
weight: 0.001
encoder:
  _target_: ae_lab.models.ConvEncoder
  latent_dim: ${..latent_dim}
  image_shape: ${..image_shape}
  channels: ${..channels}
decoder:
  _target_: ae_lab.models.ConvDecoder
  latent_dim: ${..latent_dim}
  image_shape: ${..image_shape}
  channels: ${..channels}
objective:
  _target_: ae_lab.models.Sparse
  sparsity: ${..sparsity}
  rho: ${..rho}
  weight: ${..weight}
"""
DENSE_VAE_CONV_DECODER = """\
# a dense VAE's encoder and objective with a conv decoder
_target_: ae_lab.models.Autoencoder
latent_dim: ${latent}
image_shape: ${data.image_shape}
hidden: [16]
channels: [4, 8]
beta: 1.0
encoder:
  _target_: ae_lab.models.DenseEncoder
  latent_dim: ${..latent_dim}
  image_shape: ${..image_shape}
  hidden: ${..hidden}
  per_unit: 2
decoder:
  _target_: ae_lab.models.ConvDecoder
  latent_dim: ${..latent_dim}
  image_shape: ${..image_shape}
  channels: ${..channels}
objective:
  _target_: ae_lab.models.Variational
  beta: ${..beta}
"""


@pytest.fixture
def extra_models(tmp_path: Path) -> str:
    """A config folder with two new model options beside conf/model's (``hydra.searchpath``)."""
    folder = tmp_path / "conf" / "model"
    folder.mkdir(parents=True)
    (folder / "conv_sparse.yaml").write_text(CONV_SPARSE)
    (folder / "dense_vae_conv_decoder.yaml").write_text(DENSE_VAE_CONV_DECODER)
    return f"hydra.searchpath=[file://{tmp_path / 'conf'}]"


@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 20, 24)], ids=lambda s: "x".join(map(str, s)))
def test_a_conv_encoder_with_a_sparse_objective_is_a_config(extra_models, shape):
    torch.manual_seed(0)
    model = build(extra_models, "model=conv_sparse", "model.weight=0.5", shape=shape)
    assert type(model) is Autoencoder and isinstance(model.encoder, ConvEncoder)
    assert model.objective.weight == 0.5  # the top-level key reaches the part
    metrics = train_and_test(model, shape)
    assert 0 <= metrics["test/active_frac"] <= 1 and math.isfinite(metrics["test/loss"])


def test_a_dense_vae_with_a_conv_decoder_is_a_config(extra_models):
    torch.manual_seed(0)
    model = build(extra_models, "model=dense_vae_conv_decoder", "model.beta=2")
    assert is_variational(model) and model.objective.beta == 2.0
    assert any(isinstance(m, nn.ConvTranspose2d) for m in model.decoder.modules())
    assert not isinstance(model.decoder, DenseDecoder)
    metrics = train_and_test(model, (1, 28, 28))
    assert metrics["test/neg_elbo"] > 0 and metrics["test/kl"] >= 0


def test_an_encoder_that_does_not_fit_its_objective_is_one_line(extra_models):
    cfg = compose_cfg(extra_models, "model=dense_vae_conv_decoder", "model.encoder.per_unit=1")
    from ae_lab.run.build import instantiate_model

    with pytest.raises(AeLabError, match=r"^model.encoder gives 32 values per image; .*per_unit=2"):
        instantiate_model(cfg)


def test_a_model_key_no_part_takes_is_refused_before_the_data():
    from ae_lab.config.validation import argument_problems

    assert argument_problems(compose_cfg("model=vae")) == []
    (found,) = argument_problems(compose_cfg("model=vae", "+model.betta=4"))
    assert found.startswith("model.betta is not an argument of Autoencoder (did you mean beta?)")
    (found,) = argument_problems(compose_cfg("model=vae", "+model.objective.foo=1"))
    assert found.startswith("model.objective.foo is not an argument of Variational")


# ------------------------------------------------------------------ the same networks as before
def mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def earlier_dense(latent: int, hidden: list[int], out: int) -> tuple[nn.Module, nn.Module]:
    """The encoder and decoder that ae_lab's DenseAE (out=latent) and DenseVAE (out=2*latent)
    built before composition (ae_lab/models/components.py), in the order they built them."""
    encoder = nn.Sequential(nn.Flatten(), mlp([784, *hidden, out]))
    decoder = nn.Sequential(mlp([latent, *reversed(hidden), 784]), nn.Unflatten(1, (1, 28, 28)))
    return encoder, decoder


def earlier_conv(out: int, channels: list[int], latent: int = LATENT) -> tuple[nn.Module, ...]:
    """The earlier ConvAE's (out=latent) and ConvVAE's (out=2*latent) networks, 28 -> 14 -> 7
    and back, in the order they were built."""
    layers: list[nn.Module] = []
    n_in = 1
    for n_out in channels:
        layers += [nn.Conv2d(n_in, n_out, 3, padding=1), nn.BatchNorm2d(n_out), nn.ReLU()]
        layers.append(nn.AvgPool2d(2))
        n_in = n_out
    side = 28 // 2 ** len(channels)
    encoder = nn.Sequential(*layers, nn.Flatten(), nn.Linear(n_in * side * side, out))
    chans = list(reversed(channels))
    up: list[nn.Module] = [
        nn.Linear(latent, chans[0] * side * side),
        nn.ReLU(),
        nn.Unflatten(1, (chans[0], side, side)),
    ]
    for a, b in zip(chans, chans[1:], strict=False):
        up += [nn.ConvTranspose2d(a, b, 4, 2, 1), nn.BatchNorm2d(b), nn.ReLU()]
    up.append(nn.ConvTranspose2d(chans[-1], 1, 4, 2, 1))
    return encoder, nn.Sequential(*up)


def mean(h: torch.Tensor) -> torch.Tensor:
    return h[:, :LATENT]  # the code itself, or a VAE's posterior mean


@pytest.mark.parametrize(
    ("name", "earlier", "code"),
    [
        ("ae", lambda: earlier_dense(LATENT, [128], LATENT), mean),
        ("conv_ae", lambda: earlier_conv(LATENT, [32, 64]), mean),
        ("vae", lambda: earlier_dense(LATENT, [512, 512], 2 * LATENT), mean),
        ("conv_vae", lambda: earlier_conv(2 * LATENT, [32, 64]), mean),
        ("sparse_ae", lambda: earlier_dense(LATENT, [128], LATENT), torch.sigmoid),
    ],
)
def test_the_composed_models_are_the_earlier_networks(name, earlier, code):
    """Built from the same seed, a model's config gives the earlier class's weights, and with
    them its outputs (the reconstruction of the code; a VAE's from the posterior mean)."""
    x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    encoder, decoder = earlier()
    encoder.eval(), decoder.eval()
    with torch.no_grad():
        before = torch.sigmoid(decoder(code(encoder(x))))
    torch.manual_seed(0)
    model = build(f"model={name}").eval()
    with torch.no_grad():
        after = model(x)
    assert torch.equal(after, before)
    assert [p.shape for p in model.encoder.parameters()] == [p.shape for p in encoder.parameters()]


def test_a_checkpoint_of_an_earlier_autoencoder_class_is_refused_in_one_line():
    model = build("model=ae")
    ckpt = {"state_dict": {"encoder.1.0.weight": torch.zeros(1)}, "ae_lab": {"model": "DenseAE"}}
    with pytest.raises(AeLabError) as err:
        resume.check_checkpoint(ckpt, model, "ckpt_path=old.ckpt")
    assert "\n" not in str(err.value)
    assert str(err.value).startswith("ckpt_path=old.ckpt was saved by an ae_lab from before")
    assert "train the model again" in str(err.value)


def test_a_contractive_conv_autoencoder_differentiates_its_batch_norms_on_running_statistics():
    """Per-sample Jacobians see one image at a time: the conv encoder's batch norms use their
    running statistics there, and are left training as they were."""
    torch.manual_seed(0)
    model = Autoencoder(
        ConvEncoder(3, channels=[4]), ConvDecoder(3, channels=[4]), Contractive("relu", 0.5), 3
    ).train()
    x = torch.rand(4, 1, 28, 28)
    step = model.shared_step({"input": x, "target": x})
    step.terms["loss"].backward()
    assert step.terms["contractive_penalty"] > 0
    assert model.encoder[0].weight.grad.abs().sum() > 0
    assert all(m.training for m in model.encoder.modules())
    # the penalty is the squared Jacobian of the code in the norms' evaluation mode
    model.eval()
    expected = torch.autograd.functional.jacobian(lambda v: model.encode(v).sum(0), x[:1])
    with torch.no_grad():
        code = model.encode(x[:1])
    penalty = model.objective.penalty(model, x[:1], code)
    torch.testing.assert_close(penalty, expected.pow(2).sum())
