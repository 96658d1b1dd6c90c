"""The likelihood family on the composed model: IWAE, the VampPrior and the VQ-VAE, against the
definitions they implement, and each through the entrypoint: train, test, resume, sweep, and
the NLL evaluation (which skips the VQ-VAE in one line)."""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from ae_lab.core import records
from ae_lab.evaluation.likelihood import ImportanceSampledNLL, importance_sampled_nll
from ae_lab.models import Autoencoder, is_variational
from ae_lab.models.likelihood import log_likelihood, log_normal
from ae_lab.models.objectives.iwae import iwae_bound
from ae_lab.run.train import train
from tests.conftest import FAST, compose_cfg, quiet_trainer, run_in_process, sweep_in_process

DATA = ("data.val_size=100", "data.batch_size=50", "data.binarize_target=sample")


# single-batch steps gain nothing from threads, and the suite shares its cores
pytestmark = pytest.mark.usefixtures("one_thread")


def build(*overrides: str) -> Autoencoder:
    dense = ("model.hidden=[16]",) if "model=conv_vae" not in overrides else ()
    cfg = compose_cfg("latent=3", *dense, *overrides)
    return instantiate(cfg.model, optimizer=instantiate(cfg.optimizer), _convert_="all")


def binary_batch(n: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    x = (torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) > 0.5).float()
    return {"input": x, "target": x, "label": torch.zeros(n, dtype=torch.long)}


# ------------------------------------------------------------------ IWAE
@pytest.mark.parametrize("prior", ["standard", "vamp"])
def test_iwae_with_one_sample_is_the_elbo_of_the_same_draw(prior):
    torch.manual_seed(0)
    model = build("model=iwae", "model.k=1", f"model.prior={prior}", "model.n_pseudo=4").train()
    batch = binary_batch()
    torch.manual_seed(7)
    loss = model.shared_step(batch).terms["loss"]
    # the ELBO at the draw the step made: log p(x | z) + log p(z) - log q(z | x)
    torch.manual_seed(7)
    mu, logvar = model.posterior(batch["input"])
    z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
    log_px = log_likelihood(model.decoder(z), batch["target"], "bce")
    log_pz = model.objective.log_prior(model, z)
    elbo = log_px + log_pz - log_normal(z, mu, logvar)
    torch.testing.assert_close(loss, -elbo.mean())


def test_the_iwae_bound_is_above_the_elbo_on_average():
    torch.manual_seed(0)
    model = build("model=iwae").eval()
    batch = binary_batch(16)
    with torch.no_grad():
        mu, logvar = model.posterior(batch["input"])
        gen = torch.Generator().manual_seed(1)
        bound = iwae_bound(model.log_importance_weights(mu, logvar, batch["target"], 20, gen))
        gen = torch.Generator().manual_seed(2)  # other draws: an independent ELBO estimate
        elbo = model.log_importance_weights(mu, logvar, batch["target"], 200, gen).mean(0)
    assert bound.mean() > elbo.mean()
    # and it tightens with k: the NLL from 1 sample is above the NLL from many
    one = importance_sampled_nll(model, batch["input"], batch["target"], 1, gen)
    many = importance_sampled_nll(model, batch["input"], batch["target"], 200, gen)
    assert many.mean() < one.mean()


# ------------------------------------------------------------------ VampPrior
def test_the_vamp_prior_is_the_mixture_of_the_pseudo_inputs_posteriors():
    torch.manual_seed(0)
    model = build("model=vae", "latent=1", "model.prior=vamp", "model.n_pseudo=5").eval()
    prior = model.objective.prior
    z = torch.linspace(-30, 30, 60_001).unsqueeze(1)
    with torch.no_grad():
        density = model.objective.log_prior(model, z).exp()
        mu, logvar = model.posterior(torch.sigmoid(prior.pseudo))
    assert mu.shape == (5, 1)
    # the mixture of the K Gaussians, 1/K each, by torch's own distributions
    components = torch.distributions.Normal(mu[:, 0], (0.5 * logvar[:, 0]).exp())
    mixture = components.log_prob(z).exp().mean(1)
    torch.testing.assert_close(density, mixture, rtol=1e-4, atol=1e-6)
    # a density: it integrates to 1
    assert torch.trapezoid(density, z[:, 0]).item() == pytest.approx(1.0, abs=1e-3)
    # its pseudo-inputs are learned with the model
    assert any(p is prior.pseudo for p in model.parameters())


def test_the_vamp_prior_is_sampled_and_scored_by_the_nll():
    torch.manual_seed(0)
    model = build("model=conv_vae", "model.channels=[4,8]", "model.prior=vamp", "model.n_pseudo=3")
    model.eval()
    batch = binary_batch()
    with torch.no_grad():
        z = model.sample_prior(6, torch.Generator().manual_seed(0))
        nll = importance_sampled_nll(model, batch["input"], batch["target"], 10)
    assert z.shape == (6, 3) and torch.isfinite(nll).all() and (nll > 0).all()


# ------------------------------------------------------------------ VQ-VAE
def test_vq_vae_gradients_pass_the_quantisation_and_the_codebook_learns():
    torch.manual_seed(0)
    model = build("model=vq_vae", "model.codebook_size=8", "model.code_dim=1").train()
    step = model.shared_step(binary_batch())
    step.terms["recon"].backward(retain_graph=True)  # the reconstruction alone
    first = next(m for m in model.encoder.modules() if isinstance(m, torch.nn.Linear))
    assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0
    assert model.objective.codebook.weight.grad is None  # the decoder reads z_e's gradient
    step.terms["codebook"].backward()
    assert model.objective.codebook.weight.grad.abs().sum() > 0
    # the decoder reads codebook entries
    codes = model.encode(binary_batch()["input"])
    book = model.objective.codebook.weight
    assert all(any(torch.equal(c.view(1), e) for e in book) for c in codes.flatten()[:5])
    assert not is_variational(model)


def test_vq_vae_logs_its_codebook_usage_and_has_no_nll(synthetic_root, caplog):
    from ae_lab.data import MNISTDataModule

    torch.manual_seed(0)
    model = build("model=vq_vae", "model.codebook_size=16")
    data = MNISTDataModule(
        root=str(synthetic_root),
        batch_size=50,
        val_size=100,
        download=False,
        binarize_target="sample",
    )
    trainer = quiet_trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1)
    trainer.fit(model, datamodule=data)
    logged = trainer.callback_metrics
    assert 1 <= float(logged["train/perplexity"]) <= 16
    assert 0 < float(logged["val/codes_used"]) <= 1 and "val/recon" in logged
    tester = quiet_trainer(limit_test_batches=1, callbacks=[ImportanceSampledNLL(n_samples=2)])
    with caplog.at_level(logging.WARNING):
        metrics = tester.test(model, datamodule=data, verbose=False)[0]
    assert "test/nll" not in metrics and "test/codes_used" in metrics
    lines = [r.getMessage() for r in caplog.records if "test/nll" in r.getMessage()]
    assert lines == [f"test/nll skipped: {model.objective.no_likelihood}"]


# ------------------------------------------------------------------ through the entrypoint
# the NLL evaluation of callbacks=full, with few samples
NLL = (
    "+callbacks.nll._target_=ae_lab.evaluation.likelihood.ImportanceSampledNLL",
    "+callbacks.nll.n_samples=3",
)
FAMILY = [
    ("model=iwae", "model.k=2"),
    ("model=vae", "model.prior=vamp", "model.n_pseudo=4"),
    ("model=vq_vae", "model.codebook_size=16"),
]


def run_cfg(run: Path, root: Path, *overrides: str):
    small = ("latent=4", "model.hidden=[16]", "scheduler=none")
    return compose_cfg(*FAST, f"data.root={root}", *DATA, *small, *overrides, run_dir=run)


@pytest.mark.parametrize("overrides", FAMILY, ids=lambda o: o[0])
def test_each_trains_tests_and_resumes(overrides, tmp_path, synthetic_root, caplog):
    run = tmp_path / "run"
    metrics = train(run_cfg(run, synthetic_root, *overrides, *NLL))
    assert math.isfinite(metrics["test/loss"]) and math.isfinite(metrics["test/mse"])
    if overrides[0] == "model=vq_vae":
        assert "test/nll" not in metrics and "test/perplexity" in metrics
    else:
        assert metrics["test/nll"] > 0 and metrics["test/neg_elbo"] > 0
    if overrides[0] == "model=iwae":
        assert metrics["test/neg_iwae"] > 0
    # killed after its last checkpoint: resumed, it tests the same weights (the objective's
    # own, pseudo-inputs or codebook, included) and reports the same numbers
    work = tmp_path / "rewound"
    shutil.copytree(run, work)
    record = records.read(work)
    record.status, record.fit, record.metrics, record.wall_s = records.RUNNING, None, None, None
    record.attempts[-1].wall_s = None
    records.write(work, record)
    (work / records.METRICS_FILE).unlink()
    with caplog.at_level(logging.INFO):
        again = train(run_cfg(work, synthetic_root, *overrides, *NLL, "ckpt_path=last"))
    assert "resuming from" in caplog.text
    same = {k: v for k, v in metrics.items() if not k.startswith("time/")}
    assert {k: again[k] for k in same} == same
    # ae-lab-eval rebuilds the model from the checkpoint's record and tests the same weights
    evaluated = run_in_process(
        f"ckpt_path={run}/checkpoints/last.ckpt",
        "callbacks=none",
        "logger=none",
        "threads=1",
        run_dir=tmp_path / "eval",
        data_root=synthetic_root,
        config_name="eval",
    )
    assert evaluated.metrics["test/loss"] == pytest.approx(metrics["test/loss"])
    assert evaluated.metrics["test/mse"] == pytest.approx(metrics["test/mse"])


def test_the_family_sweeps(tmp_path, synthetic_root):
    sweep = sweep_in_process(
        *FAST,
        *DATA,
        "latent=4",
        "model.hidden=[16]",
        "model=iwae,vq_vae",
        data_root=synthetic_root,
        sweep_dir=tmp_path / "sweep",
    )
    jobs = sorted(p.parent.name for p in sweep.sweep_dir.rglob("metrics.json"))
    assert len(jobs) == 2
    for job in sweep.sweep_dir.rglob("metrics.json"):
        assert math.isfinite(records.read_metrics(job.parent)["test/loss"])
