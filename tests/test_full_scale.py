"""callbacks=full at the scale of the run, the downstream classifier's cache folder, the NLL's
chunked estimate, and the thread count a run takes when ``threads`` is unset."""

from __future__ import annotations

import logging
import math
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from ae_lab.core import hardware
from ae_lab.evaluation import classifier as downstream_mod
from ae_lab.evaluation import likelihood
from ae_lab.evaluation import probe as probe_mod
from ae_lab.evaluation import samples as samples_mod
from ae_lab.evaluation.classifier import default_cache_dir
from ae_lab.evaluation.common import in_proportion
from ae_lab.evaluation.downstream import DownstreamClassification
from ae_lab.models import DenseVAE
from ae_lab.models.classifier import CNNClassifier
from ae_lab.models.vae import log_likelihood
from ae_lab.run.process import run_threads
from ae_lab.run.train import train
from tests.conftest import compose_cfg

# --- the downstream classifier's cache ---


@pytest.fixture
def cache_env(monkeypatch, tmp_path):
    """No ae_lab or XDG cache variable, and a home folder of the test's own."""
    monkeypatch.delenv("AE_LAB_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def test_the_classifier_cache_is_the_users_cache_folder_not_the_current_one(cache_env, monkeypatch):
    tmp_path = cache_env
    monkeypatch.chdir(tmp_path)
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "ae_lab"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "ae_lab"
    monkeypatch.setenv("AE_LAB_CACHE_DIR", str(tmp_path / "own"))  # still the override
    assert default_cache_dir() == tmp_path / "own" / "ae_lab"
    # callbacks=full leaves the folder to the callback, which takes the user's cache folder
    cfg = compose_cfg("callbacks=full")
    assert cfg.callbacks.downstream.cache_dir is None
    data = SimpleNamespace(dataset="mnist", root=str(tmp_path), val_size=5000, split_seed=42)
    path = DownstreamClassification(cache_dir=None).cache_path(data)
    assert path.parent == tmp_path / "own" / "ae_lab" and path.name.startswith("classifier-")


def test_the_first_training_of_the_classifier_says_so_once_with_its_expected_time(
    cache_env, monkeypatch, synthetic_root, caplog
):
    from ae_lab.data import MNISTDataModule

    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_env / "xdg"))
    trained = []

    def train_classifier(*args, **kwargs):
        trained.append(args[0].dataset)
        return CNNClassifier()

    monkeypatch.setattr(downstream_mod, "train_classifier", train_classifier)
    data = MNISTDataModule(root=str(synthetic_root), val_size=100)
    data.setup()
    callback = DownstreamClassification(epochs=2)
    with caplog.at_level(logging.INFO, logger="ae_lab.evaluation.classifier_source"):
        for _ in range(2):
            callback.load_classifier(data, torch.device("cpu"))
    lines = [r.getMessage() for r in caplog.records if "training it once" in r.getMessage()]
    assert trained == ["mnist"] and len(lines) == 1
    assert "2 epochs of 500 training images" in lines[0] and " CPU thread" in lines[0]
    assert "about " in lines[0] and str(cache_env / "xdg" / "ae_lab") in lines[0]
    assert list((cache_env / "xdg" / "ae_lab").glob("classifier-*.ckpt"))


def test_expected_training_time_grows_with_the_work_and_shrinks_with_threads(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    one = downstream_mod.expected_training(55_000, 5, cpu)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    four = downstream_mod.expected_training(55_000, 5, cpu)
    assert one == "about 2 min on 1 CPU thread"  # 5 x 55,000 x 0.5 ms = 137 s
    assert four == "about 40 s on 4 CPU threads"
    assert "GPU" in downstream_mod.expected_training(55_000, 5, torch.device("cuda"))


def test_the_classifier_sees_a_test_batch_in_slices_with_the_same_logits():
    torch.manual_seed(0)
    classifier = CNNClassifier().eval()
    images = torch.rand(300, 1, 28, 28)
    seen: list[int] = []
    classifier.net.register_forward_hook(lambda m, args, out: seen.append(len(args[0])))
    with torch.no_grad():
        sliced = downstream_mod.classify(classifier, images)
        whole = classifier(images)
    assert seen == [128, 128, 44, 300]
    assert torch.allclose(sliced, whole, atol=1e-5)


# --- evaluations in proportion to the images a run tests ---


def stub_trainer(test_images: int, world_size: int = 1) -> SimpleNamespace:
    labels = torch.zeros(test_images)
    datamodule = SimpleNamespace(labels=lambda split: labels)
    return SimpleNamespace(datamodule=datamodule, world_size=world_size)


def test_in_proportion_scales_only_a_run_that_tests_part_of_the_test_split():
    assert in_proportion(10_000, 256, stub_trainer(10_000)) == 256
    assert in_proportion(10_000, 10_000, stub_trainer(10_000)) == 10_000  # a full run
    assert in_proportion(10_000, 128, stub_trainer(10_000, world_size=2)) == 256  # DDP: all
    assert in_proportion(10_000, 3, stub_trainer(10_000), floor=100) == 100
    assert in_proportion(50, 3, stub_trainer(10_000), floor=100) == 50  # never more than n
    assert in_proportion(7, 1, SimpleNamespace(datamodule=None, world_size=1)) == 7


@pytest.fixture
def sizes(monkeypatch):
    """The number of prior samples sample quality draws and of training images the probe
    encodes, as the run asks for them."""
    seen: dict[str, list[int]] = {"samples": [], "probe": []}
    prior, encode = samples_mod.prior_samples, probe_mod.encode_all

    def prior_samples(model, n, seed=0):
        seen["samples"].append(n)
        return prior(model, n, seed)

    def encode_all(model, images, batch_size):
        seen["probe"].append(len(images))
        return encode(model, images, batch_size)

    monkeypatch.setattr(samples_mod, "prior_samples", prior_samples)
    monkeypatch.setattr(probe_mod, "encode_all", encode_all)
    return seen


def full_run(tmp_path, synthetic_root, *overrides: str) -> dict[str, float]:
    cfg = compose_cfg(
        "callbacks=full",
        "model=vae",
        "latent=4",
        "data.binarize_target=sample",
        f"data.root={synthetic_root}",
        "data.val_size=100",
        "data.batch_size=32",
        "logger=none",
        "threads=1",
        "trainer.enable_progress_bar=false",
        "callbacks.downstream.epochs=1",
        "callbacks.latent_map.max_iter=250",
        "callbacks.nll.n_samples=20",
        "callbacks.probe.n_train=300",
        *overrides,
        run_dir=tmp_path / "run",
    )
    return train(cfg)


def test_a_tiny_run_scores_samples_and_fits_the_probe_on_as_many_images_as_it_tests(
    cache_env, monkeypatch, synthetic_root, sizes
):
    """debug=tiny tests 2 batches of 32 of the 200 test images: sample quality on 64 prior
    samples (not 2000), the probe on 300 x 64 / 200 training codes (at least 10 a class), the
    NLL and the map on the 64 tested images; and the classifier lands in the user's cache."""
    tmp_path = cache_env
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    metrics = full_run(tmp_path, synthetic_root, "debug=tiny")
    assert sizes == {"samples": [64], "probe": [100]}
    for key in ("samples/fd", "probe/acc", "test/nll", "downstream/acc_recon"):
        assert math.isfinite(metrics[key]), key
    assert OmegaConf.select(compose_cfg("debug=tiny"), "data.eval_batch_size") == 128
    assert list((tmp_path / "xdg" / "ae_lab").glob("classifier-*.ckpt"))
    assert not (tmp_path / ".cache").exists()
    import numpy as np

    assert len(np.load(tmp_path / "run" / "figures" / "latent_map.npz")["points"]) == 64


def test_a_run_that_tests_everything_keeps_the_configured_sizes(
    cache_env, monkeypatch, synthetic_root, sizes
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_env / "xdg"))
    full_run(
        cache_env,
        synthetic_root,
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "callbacks.samples.n_samples=150",
    )
    assert sizes == {"samples": [150], "probe": [300]}


# --- the importance-sampled NLL ---


def reference_nll(model, x, n_samples, seed, chunk):
    """The estimate as first written: the targets repeated for every draw, the cross-entropy per
    pixel, both Gaussian log-densities in full; the same draws as ``importance_sampled_nll``."""
    gen = torch.Generator().manual_seed(seed)
    mu, logvar = model.posterior(x)
    log_ws = []
    for start in range(0, n_samples, chunk):
        k = min(chunk, n_samples - start)
        eps = torch.randn((k, *mu.shape), generator=gen)
        z = mu + (0.5 * logvar).exp() * eps
        logits = model.decoder(z.flatten(0, 1))
        log_px = log_likelihood(logits, x.repeat(k, 1, 1, 1), model.objective.recon_loss).view(
            k, -1
        )
        log_pz = -0.5 * (math.log(2 * math.pi) + z.pow(2)).sum(-1)
        log_qz = -0.5 * (math.log(2 * math.pi) + logvar + eps.pow(2)).sum(-1)
        log_ws.append((log_px + log_pz - log_qz).double())
    return -(torch.logsumexp(torch.cat(log_ws), 0) - math.log(n_samples))


@pytest.mark.parametrize("recon_loss", ["bce", "mse"])
def test_the_nll_is_the_estimate_as_first_written_from_the_same_draws(recon_loss):
    """The likelihood in two passes, log p(z) - log q(z | x) from the noise alone and the sum in
    float64 change no more than rounding."""
    torch.manual_seed(0)
    model = DenseVAE(latent_dim=3, hidden=[16], recon_loss=recon_loss).eval()
    x = torch.bernoulli(torch.full((5, 1, 28, 28), 0.3))
    with torch.no_grad():
        expected = reference_nll(model, x, 12, seed=4, chunk=4)
        gen = torch.Generator().manual_seed(4)
        got = likelihood.importance_sampled_nll(model, x, x, 12, gen, max_decoded=20)
    assert got.dtype == torch.float32 and got.shape == (5,)
    assert got.double() == pytest.approx(expected, abs=2e-3)
    assert not torch.allclose(got.double(), expected.roll(1), atol=2e-3)  # images kept apart


# --- the threads a run takes when ``threads`` is unset ---


@pytest.fixture
def machine(monkeypatch, tmp_path):
    """A machine of ``cores`` cores at ``load``, with ``omp`` as OMP_NUM_THREADS."""

    def make(cores=2, load=0.0, omp=None, affinity=None, quota=None):
        monkeypatch.setattr(hardware.os, "cpu_count", lambda: cores)
        monkeypatch.setattr(hardware.os, "getloadavg", lambda: (load, load, load))
        allowed = set(range(affinity or cores))
        monkeypatch.setattr(hardware.os, "sched_getaffinity", lambda pid: allowed, raising=False)
        cpu_max = tmp_path / "cpu.max"
        cpu_max.write_text(f"{quota * 100000} 100000\n" if quota else "max 100000\n")
        monkeypatch.setattr(hardware, "CPU_MAX", cpu_max)
        if omp is None:
            monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        else:
            monkeypatch.setenv("OMP_NUM_THREADS", str(omp))
        hardware.default_threads.cache_clear()
        return hardware.default_threads()

    yield make
    hardware.default_threads.cache_clear()


def test_the_default_thread_count_is_the_cores_free_to_the_run(machine):
    assert machine(cores=2, load=0.1).threads == 2  # idle: every core
    assert machine(cores=2, load=1.0).threads == 1  # another job on one core
    assert machine(cores=2, load=7.5).threads == 1  # a shared machine: never 0, never 2
    assert machine(cores=16, load=4.0).threads == 12
    assert machine(cores=16, load=0.0, affinity=4).threads == 4  # taskset / a cpuset
    assert machine(cores=16, load=0.0, quota=3).threads == 3  # a container's --cpus
    assert machine(cores=16, load=0.0, omp=8).threads == 8  # a parallel sweep's share per job
    assert machine(cores=16, load=10.0, omp=8).threads == 6  # ... within what is free
    choice = machine(cores=2, load=1.3)
    assert choice.describe() == (
        "torch threads: 1 (2 cores, load average 1.3; threads=N sets them)"
    )


def test_threads_n_overrides_and_a_multi_device_run_shares_the_free_cores(machine, caplog):
    machine(cores=16, load=0.0)
    assert run_threads(OmegaConf.create({"threads": 3, "trainer": {"devices": 1}})) == 3
    with caplog.at_level(logging.INFO, logger="ae_lab.run.process"):
        assert run_threads(OmegaConf.create({"threads": None, "trainer": {"devices": 1}})) == 16
        assert run_threads(OmegaConf.create({"threads": None, "trainer": {"devices": 4}})) == 4
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("torch threads")]
    assert len(lines) == 2 and "shared by 4 processes" in lines[1]
