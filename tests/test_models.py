"""Every model of the zoo, built from its own config: shapes, learning, parameter counts, and
each penalty against a direct computation."""

from __future__ import annotations

import math
from collections.abc import Callable
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from hydra.utils import instantiate

from ae_lab.callbacks.hparams import hyperparameters
from ae_lab.data import MNISTDataModule
from ae_lab.models import (
    AutoencoderModule,
    CNNClassifier,
    ContractiveAE,
    DenseVAE,
    SparseAE,
    is_variational,
)
from ae_lab.models.contractive import jacobian_frobenius_sq
from ae_lab.models.networks import DenseEncoder
from ae_lab.models.sparse import kl_sparsity_penalty, l1_penalty
from ae_lab.models.vae import gaussian_kl
from tests.conftest import AUTOENCODERS, CLASSIFIERS, MODELS, compose_cfg, quiet_trainer

# single-batch steps gain nothing from threads, and the suite shares its cores
pytestmark = pytest.mark.usefixtures("one_thread")


def build(name: str, *overrides: str) -> L.LightningModule:
    """The model exactly as ``python -m ae_lab model=<name> <overrides>`` would build it."""
    cfg = compose_cfg(f"model={name}", *overrides)
    return instantiate(cfg.model, optimizer=instantiate(cfg.optimizer), _convert_="all")


def loss_of(model: L.LightningModule, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The training objective on ``batch``, with the VAE's sampling noise fixed."""
    torch.manual_seed(0)
    if isinstance(model, AutoencoderModule):
        return model.shared_step(batch)[0]["loss"]
    return torch.nn.functional.cross_entropy(model(batch["input"]), batch["label"])


@pytest.mark.parametrize("name", AUTOENCODERS)
def test_autoencoder_shapes_round_trip(name: str, batch: dict[str, torch.Tensor]) -> None:
    model = build(name, "latent=6").eval()
    x = batch["input"]
    with torch.no_grad():
        code = model.encode(x)
        recon = model(x)
    assert code.shape == (len(x), 6)
    assert recon.shape == x.shape
    assert recon.min() >= 0 and recon.max() <= 1


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifier_shapes(name: str, batch: dict[str, torch.Tensor]) -> None:
    model = build(name).eval()
    with torch.no_grad():
        assert model(batch["input"]).shape == (len(batch["input"]), 10)


@pytest.mark.parametrize("name", MODELS)
def test_a_few_steps_on_one_batch_lower_the_loss(name: str, batch: dict[str, torch.Tensor]) -> None:
    torch.manual_seed(0)
    model = build(name, "latent=8").train()
    optimizer = model.configure_optimizers()
    with torch.no_grad():
        before = loss_of(model, batch).item()
    for _ in range(20):
        optimizer.zero_grad()
        loss_of(model, batch).backward()
        optimizer.step()
    with torch.no_grad():
        after = loss_of(model, batch).item()
    assert math.isfinite(after)
    assert after < 0.98 * before, (before, after)


@pytest.mark.parametrize("name", MODELS)
def test_parameter_count_and_bottleneck_reach_the_records(name: str) -> None:
    model = build(name, "latent=6")
    expected = sum(p.numel() for p in model.parameters())
    assert model.n_params == expected > 0
    assert hyperparameters({"model": name}, model) == {"model": name, "n_params": expected}
    # the model, not the config's latent, says whether it has a bottleneck
    assert model.latent_dim == (None if name == "classifier" else 6)


def test_deep_ae_has_the_configured_stack() -> None:
    model = build("deep_ae", "latent=5")
    widths = [m.out_features for m in model.encoder.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == [512, 256, 128, 5]
    widths = [m.out_features for m in model.decoder.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == [128, 256, 512, 784]


def fit_briefly(
    model: L.LightningModule, root, callback: L.Callback, epochs: int, batches: int
) -> L.Trainer:
    """``epochs`` epochs of ``batches`` batches of 100 synthetic images, nothing written."""
    data = MNISTDataModule(root=str(root), batch_size=100, val_size=100, download=False)
    trainer = quiet_trainer(
        max_epochs=epochs, limit_train_batches=batches, limit_val_batches=1, callbacks=[callback]
    )
    trainer.fit(model, datamodule=data)
    return trainer


def test_he_init_keeps_the_signal_through_the_deep_stack() -> None:
    """torch's default init shrinks a ReLU stack's signal about sixfold in variance a layer."""
    torch.manual_seed(0)
    x = torch.rand(256, 1, 28, 28)
    spread = {}
    for he_init in ("true", "false"):
        model = build("deep_ae", "latent=64", f"model.he_init={he_init}")
        with torch.no_grad():
            spread[he_init] = model.encoder(x).std(dim=0).mean().item()
    assert spread["true"] > 5 * spread["false"]


class RecordLR(L.Callback):
    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def test_default_schedule_is_one_cycle_over_the_whole_fit(synthetic_root) -> None:
    """Warm-up to optimizer.lr, then annealed to almost nothing by the fit's last step."""
    cfg = compose_cfg("model.hidden=[16]")
    model = instantiate(cfg.model, optimizer=instantiate(cfg.optimizer), _convert_="all")
    model.scheduler_factory = instantiate(cfg.scheduler)
    record = RecordLR()
    fit_briefly(model, synthetic_root, record, epochs=2, batches=5)
    peak = cfg.optimizer.lr
    assert len(record.lrs) == 10
    assert record.lrs[0] == pytest.approx(peak / 25)
    assert max(record.lrs) == pytest.approx(peak, rel=0.05)
    assert record.lrs[-1] < peak / 10
    assert record.lrs.index(max(record.lrs)) < 5


def test_beta_vae_is_a_dense_vae_with_beta_4() -> None:
    model = build("beta_vae")
    assert is_variational(model) and isinstance(model.encoder, DenseEncoder)
    assert model.objective.beta == 4.0


# --- VAE: KL and warm-up ---------------------------------------------------------------------


def test_gaussian_kl_matches_a_monte_carlo_estimate() -> None:
    gen = torch.Generator().manual_seed(0)
    mu = torch.randn(3, 4, generator=gen)
    logvar = torch.randn(3, 4, generator=gen) * 0.5
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    torch.manual_seed(1)
    z = q.sample((200_000,))
    mc = (q.log_prob(z) - p.log_prob(z)).sum(dim=-1).mean(dim=0)
    torch.testing.assert_close(gaussian_kl(mu, logvar), mc, rtol=0.02, atol=0.02)


def fake_trainer(global_step: int, batches: int, accumulate: int = 1) -> SimpleNamespace:
    return SimpleNamespace(
        global_step=global_step, num_training_batches=batches, accumulate_grad_batches=accumulate
    )


def test_kl_warmup_ramps_linearly_from_zero_to_beta() -> None:
    model = DenseVAE(latent_dim=2, hidden=[8], beta=4.0, kl_warmup_epochs=2).train()
    steps = 2 * 10  # two epochs of ten optimizer steps
    for step in (0, 5, 10, 19, 20, 35):
        model._trainer = fake_trainer(step, batches=10)
        assert model.objective.effective_beta(model) == pytest.approx(4.0 * min(1.0, step / steps))
    # steps, not batches, count when gradients accumulate: 10 batches = 5 steps per epoch
    model._trainer = fake_trainer(5, batches=10, accumulate=2)
    assert model.objective.effective_beta(model) == pytest.approx(4.0 * 5 / 10)
    # evaluation always uses the full beta
    model.eval()
    model._trainer = fake_trainer(0, batches=10)
    assert model.objective.effective_beta(model) == 4.0


def test_no_warmup_means_constant_beta() -> None:
    model = DenseVAE(latent_dim=2, hidden=[8], beta=4.0).train()
    model._trainer = fake_trainer(0, batches=10)
    assert model.objective.effective_beta(model) == 4.0


class RecordBeta(L.Callback):
    """Records beta at every step and checks each epoch's logged ``train/beta`` against the mean.

    The model logs its train/* epoch means in its own ``on_train_epoch_end``, which Lightning
    calls after the callbacks' hook, so an epoch's value is checked once the next epoch (or the
    fit) has begun.
    """

    def __init__(self) -> None:
        self.per_epoch: list[list[float]] = []
        self.checked = 0

    def _check_last_epoch(self, trainer) -> None:
        if self.per_epoch:
            logged = trainer.callback_metrics["train/beta"].item()
            assert logged == pytest.approx(sum(self.per_epoch[-1]) / len(self.per_epoch[-1]))
            self.checked += 1

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._check_last_epoch(trainer)
        self.per_epoch.append([])

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.per_epoch[-1].append(pl_module.objective.effective_beta(pl_module))

    def on_fit_end(self, trainer, pl_module) -> None:
        self._check_last_epoch(trainer)


def test_warmup_in_a_real_fit_logs_the_effective_beta(synthetic_root) -> None:
    L.seed_everything(0)
    model = DenseVAE(latent_dim=2, hidden=[16], beta=4.0, kl_warmup_epochs=2)
    record = RecordBeta()
    trainer = fit_briefly(model, synthetic_root, record, epochs=3, batches=3)
    betas = [b for epoch in record.per_epoch for b in epoch]
    assert betas == pytest.approx([4.0 * min(1.0, s / 6) for s in range(9)])
    assert record.checked == 3
    assert trainer.callback_metrics["val/beta"].item() == 4.0


# --- sparse autoencoder ------------------------------------------------------------------------


def test_sparsity_penalties_match_hand_computation() -> None:
    code = torch.tensor([[0.1, 0.2], [0.3, 0.4]])
    rho = 0.05

    def kl(r: float, q: float) -> float:
        return r * math.log(r / q) + (1 - r) * math.log((1 - r) / (1 - q))

    assert kl_sparsity_penalty(code, rho).item() == pytest.approx(kl(rho, 0.2) + kl(rho, 0.3))
    assert kl_sparsity_penalty(torch.full((4, 3), rho), rho).item() == pytest.approx(0, abs=1e-6)
    assert l1_penalty(torch.tensor([[1.0, -2.0], [0.0, 3.0]])).item() == pytest.approx(3.0)


@pytest.mark.parametrize(("sparsity", "threshold"), [("kl", 0.5), ("l1", 0.0)])
def test_sparse_ae_loss_terms(sparsity: str, threshold: float, batch) -> None:
    model = SparseAE(latent_dim=10, sparsity=sparsity, rho=0.1, weight=0.3)
    terms, recon, _ = model.shared_step(batch)
    code = model.encode(batch["input"])
    penalty = kl_sparsity_penalty(code, 0.1) if sparsity == "kl" else l1_penalty(code)
    mse = torch.nn.functional.mse_loss(recon, batch["target"])
    torch.testing.assert_close(terms["sparsity_penalty"], penalty)
    torch.testing.assert_close(terms["loss"], mse + 0.3 * penalty)
    torch.testing.assert_close(terms["code_mean"], code.mean())
    torch.testing.assert_close(terms["active_frac"], (code > threshold).float().mean())


def test_sparse_ae_can_be_overcomplete(batch) -> None:
    model = build("sparse_ae", "latent=1000", "model.sparsity=l1")
    assert model.encode(batch["input"]).shape == (len(batch["input"]), 1000)
    assert (model.encode(batch["input"]) >= 0).all()


# --- contractive autoencoder ---------------------------------------------------------------------


def brute_force_frobenius_sq(
    encoder: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
) -> torch.Tensor:
    """||d code / d x||_F^2 per sample, one autograd pass per sample and code unit."""
    out = []
    for xi in x:
        xi = xi.unsqueeze(0).clone().requires_grad_(True)
        code = encoder(xi)[0]
        total = torch.zeros(())
        for j in range(code.numel()):
            (grad,) = torch.autograd.grad(code[j], xi, retain_graph=True)
            total = total + grad.pow(2).sum()
        out.append(total)
    return torch.stack(out)


@pytest.mark.parametrize(
    ("hidden", "activation"), [([], "sigmoid"), ([], "relu"), ([7], "sigmoid"), ([7, 5], "relu")]
)
def test_contractive_penalty_matches_brute_force_jacobian(hidden, activation, batch) -> None:
    torch.manual_seed(0)
    model = ContractiveAE(latent_dim=3, hidden=hidden, activation=activation)
    x = batch["input"][:4]
    code = model.encode(x)
    expected = brute_force_frobenius_sq(model.encode, x).mean()
    assert (model.objective.single_linear(model) is not None) == (not hidden)  # the closed form
    torch.testing.assert_close(model.objective.penalty(model, x, code), expected)
    torch.testing.assert_close(jacobian_frobenius_sq(model.encode, x).mean(), expected)


@pytest.mark.parametrize("hidden", [[], [7]])
def test_contractive_penalty_trains_the_encoder(hidden, batch) -> None:
    model = ContractiveAE(latent_dim=3, hidden=hidden)
    x = batch["input"][:4]
    model.objective.penalty(model, x, model.encode(x)).backward()
    first = next(m for m in model.encoder.modules() if isinstance(m, torch.nn.Linear))
    assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0


def test_contractive_loss_terms(batch) -> None:
    model = ContractiveAE(latent_dim=4, weight=0.5)
    terms, recon, _ = model.shared_step(batch)
    x = batch["input"]
    penalty = brute_force_frobenius_sq(model.encode, x).mean()
    torch.testing.assert_close(terms["contractive_penalty"], penalty)
    mse = torch.nn.functional.mse_loss(recon, batch["target"])
    torch.testing.assert_close(terms["loss"], mse + 0.5 * penalty)


def test_vae_and_classifier_are_the_expected_families() -> None:
    assert is_variational(build("conv_vae"))
    assert isinstance(build("classifier"), CNNClassifier)
