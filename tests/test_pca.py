import numpy as np
import pytest
import torch

from ae_lab.data import GaussianNoise, MNISTDataModule
from ae_lab.evaluation import PCABaseline
from ae_lab.evaluation import pca as pca_module
from ae_lab.evaluation.pca import KEPT_FITS, LinearReconstruction, fit_pca, shared_fit
from ae_lab.evaluation.record import build_record
from ae_lab.models import DenseAE, SparseAE
from tests.conftest import evaluating, quiet_trainer


def eval_batches(dm: MNISTDataModule, split: str) -> list[dict[str, torch.Tensor]]:
    trainer, dm.trainer = dm.trainer, evaluating()
    loader = dm.val_dataloader() if split == "val" else dm.test_dataloader()
    batches = [dm.on_after_batch_transfer(b, 0) for b in loader]
    dm.trainer = trainer
    return batches


@pytest.fixture(scope="module")
def fitted(synthetic_root):
    dm = MNISTDataModule(
        root=str(synthetic_root),
        download=False,
        val_size=100,
        batch_size=50,
        eval_batch_size=30,
        corruption=GaussianNoise(0.3),
    )
    model = DenseAE(latent_dim=5, hidden=[16])
    pca = PCABaseline()
    trainer = quiet_trainer(max_epochs=1, limit_train_batches=3, callbacks=[pca])
    trainer.fit(model, datamodule=dm)
    val = dict(trainer.callback_metrics)
    trainer.test(model, datamodule=dm)
    return dm, model, pca, val, dict(trainer.callback_metrics)


def test_pca_uses_the_model_latent_and_the_training_images(fitted):
    dm, _, pca, _, _ = fitted
    assert pca.pca.n_components_ == 5
    expected = dm.images("train").flatten(1).mean(0).numpy()
    np.testing.assert_allclose(pca.pca.mean_, expected, atol=1e-6)


@pytest.mark.parametrize("split", ["val", "test"])
def test_pca_mse_is_sklearn_reconstruction_of_the_same_corrupted_inputs(fitted, split):
    dm, model, pca, val, test = fitted
    batches = eval_batches(dm, split)
    inputs = torch.cat([b["input"] for b in batches]).flatten(1).numpy()
    targets = torch.cat([b["target"] for b in batches]).flatten(1).numpy()
    recon = pca.pca.inverse_transform(pca.pca.transform(inputs))
    logged = (val if split == "val" else test)[f"pca/{split}_mse"].item()
    assert logged == pytest.approx(float(((recon - targets) ** 2).mean()), rel=1e-4)


def test_model_mse_is_the_same_quantity_for_its_own_reconstructions(fitted):
    dm, model, _, _, test = fitted
    batches = eval_batches(dm, "test")
    model.eval()
    with torch.no_grad():
        errors = [(model(b["input"]) - b["target"]) ** 2 for b in batches]
    assert test["test/mse"].item() == pytest.approx(torch.cat(errors).mean().item(), rel=1e-4)


def test_a_batch_is_reconstructed_once_for_every_callback_that_asks(fitted):
    """The batch's record holds PCA's reconstruction, computed once; every evaluation that scores
    PCA (its own MSE, per-digit MSE, downstream accuracy) reads that one."""
    _, model, pca, _, _ = fitted
    x = torch.rand(5, 1, 28, 28)
    batch = {"input": x, "target": x, "label": torch.zeros(5, dtype=torch.long)}
    outputs = model.shared_step(batch).outputs()
    runs = []
    hook = pca.reconstruct.register_forward_hook(lambda *_: runs.append(1))
    record = build_record("test", 0, batch, outputs, pca.reconstruct)
    hook.remove()
    assert len(runs) == 1
    expected = pca.pca.inverse_transform(pca.pca.transform(batch["input"].flatten(1).numpy()))
    np.testing.assert_allclose(record.pca_recon.flatten(1).numpy(), expected, atol=1e-5)
    no_pca = build_record("test", 0, batch, outputs)
    assert no_pca.pca_recon is None


def test_variance_ratio_picks_enough_components():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((300, 1, 28, 28), dtype=np.float32))
    pca = fit_pca(x, 0.9)
    assert pca.explained_variance_ratio_.sum() >= 0.9
    assert pca.explained_variance_ratio_[:-1].sum() < 0.9


def test_linear_reconstruction_matches_sklearn():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.random((200, 1, 28, 28), dtype=np.float32))
    pca = fit_pca(x, 7)
    module = LinearReconstruction(torch.tensor(pca.components_), torch.tensor(pca.mean_))
    expected = pca.inverse_transform(pca.transform(x.flatten(1).numpy()))
    np.testing.assert_allclose(module(x).flatten(1).numpy(), expected, atol=1e-5)


def test_a_fit_is_shared_by_runs_on_the_same_images_and_made_anew_for_any_other(monkeypatch):
    fits = []
    monkeypatch.setattr(pca_module, "_fits", type(pca_module._fits)())
    monkeypatch.setattr(pca_module, "fit_pca", lambda *args: fits.append(args) or fit_pca(*args))
    x = torch.from_numpy(np.random.default_rng(2).random((120, 1, 8, 8), dtype=np.float32))
    first, seconds, earlier = shared_fit(x, 4, 0)
    again, seconds_again, earlier_again = shared_fit(x.clone(), 4, 0)  # same bytes, new tensor
    assert again is first and (earlier, earlier_again) == (False, True) and len(fits) == 1
    assert seconds_again == seconds > 0  # the fit's own time, not the lookup's
    changed = x.clone()
    changed[7, 0, 3, 3] += 1e-3
    others = [shared_fit(changed, 4, 0), shared_fit(x, 5, 0), shared_fit(x, 4, 1)]
    assert all(not earlier and fit is not first for fit, _, earlier in others)
    assert len(fits) == 4
    # the oldest fits make room: KEPT_FITS are kept
    for n in range(6, 6 + KEPT_FITS):
        shared_fit(x, n, 0)
    assert not shared_fit(x, 4, 0)[2] and len(fits) == 5 + KEPT_FITS


def test_an_overcomplete_code_meets_the_full_rank_pca_and_says_so(synthetic_root, caplog):
    dm = MNISTDataModule(root=str(synthetic_root), download=False, val_size=100, batch_size=50)
    pca = PCABaseline()
    trainer = quiet_trainer(limit_test_batches=1, callbacks=[pca])
    with caplog.at_level("WARNING", logger="ae_lab.evaluation.pca"):
        metrics = trainer.test(SparseAE(latent_dim=1000), datamodule=dm, verbose=False)[0]
    # 500 training images of 784 pixels: PCA has at most 500 components, and records that
    assert metrics["pca/n_components"] == pca.pca.n_components_ == 500
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "PCA baseline: 1000 components asked for, but 500 images of 784 pixels have at most 500; "
        "PCA uses 500 (recorded as pca/n_components)"
    ]


@pytest.mark.parametrize("bad", [0, -3, 1.5, "ten"])
def test_invalid_component_counts_are_refused(bad):
    with pytest.raises(ValueError, match="n_components"):
        PCABaseline(n_components=bad)


@pytest.mark.integration
def test_reproduces_the_reference_pca_figure_on_real_mnist(mnist_root):
    """PCA with 64 components on MNIST: test MSE 0.009047 (pixels in [0, 1])."""
    dm = MNISTDataModule(root=str(mnist_root), download=False)
    dm.setup()
    pca = fit_pca(dm.images("train"), 64)
    module = LinearReconstruction(torch.tensor(pca.components_), torch.tensor(pca.mean_))
    x = dm.images("test")
    mse = ((module(x) - x) ** 2).mean().item()
    assert mse == pytest.approx(0.009047, rel=0.02)
    assert [fit_pca(dm.images("train"), r).n_components_ for r in (0.8, 0.9, 0.95)] == [
        pytest.approx(44, abs=1),
        pytest.approx(87, abs=1),
        pytest.approx(154, abs=1),
    ]
