"""Novelty detection: ``data.exclude_classes`` keeps classes out of training and validation (not
out of the test set) on both loader paths and across a resume, the PCA baseline fits on what is
left, and the AUROC of the reconstruction error is scikit-learn's ``roc_auc_score``."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from ae_lab.config.validation import problems
from ae_lab.core import records
from ae_lab.core.errors import AeLabError
from ae_lab.data import ImageDataModule
from ae_lab.evaluation import NoveltyAUROC, PCABaseline
from ae_lab.evaluation.context import EvalContext
from ae_lab.evaluation.novelty import MODEL_AUROC, PCA_AUROC
from ae_lab.models import DenseAE
from ae_lab.reporting import groups
from scripts import results_sweep
from tests.conftest import TINY, compose_cfg, evaluating, quiet_trainer, run_in_process

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Lightning's few-workers hints


def datamodule(root, exclude=(), fast=True, **kw) -> ImageDataModule:
    dm = ImageDataModule(
        root=str(root),
        download=False,
        val_size=100,
        batch_size=40,
        eval_batch_size=30,
        fast=fast,
        exclude_classes=exclude,
        **kw,
    )
    dm.setup("fit")
    return dm


def loader_labels(loader) -> set[int]:
    return {int(k) for _, y, _ in loader for k in y}


# --- the splits ---


@pytest.mark.parametrize("fast", [True, False], ids=["resident", "classic"])
def test_excluded_classes_leave_train_and_val_but_not_test(synthetic_root, fast):
    full, dm = datamodule(synthetic_root, fast=fast), datamodule(synthetic_root, [3, 7], fast)
    assert dm.exclude_classes == (3, 7)
    everything = set(range(10))
    assert loader_labels(full.train_dataloader()) == everything  # the files hold every class
    assert loader_labels(dm.train_dataloader()) == everything - {3, 7}
    assert loader_labels(dm.val_dataloader()) == everything - {3, 7}
    assert loader_labels(dm.test_dataloader()) == everything
    for split in ("train", "val"):  # the same split, less the excluded classes
        labels = full.labels(split)
        kept = (labels != 3) & (labels != 7)
        assert torch.equal(dm.splits[split][0], full.splits[split][0][kept])
        assert torch.equal(dm.images(split), full.images(split)[kept])
    assert torch.equal(dm.images("test"), full.images("test"))


def test_the_checkpointed_state_belongs_to_its_classes(synthetic_root):
    dm = datamodule(synthetic_root, [2])
    dm.train_dataloader()
    state = dm.state_dict()
    assert state["exclude_classes"].tolist() == [2]
    datamodule(synthetic_root, [2]).load_state_dict(dict(state))  # the same run continues
    for other in ([], [3]):
        with pytest.raises(AeLabError, match=r"trained with data.exclude_classes=\[2\]"):
            datamodule(synthetic_root, other).load_state_dict(dict(state))
    # a run without excluded classes keeps the state it had before the setting existed
    plain = datamodule(synthetic_root)
    plain.train_dataloader()
    assert "exclude_classes" not in plain.state_dict()
    with pytest.raises(AeLabError, match=r"trained with data.exclude_classes=\[\]"):
        datamodule(synthetic_root, [2]).load_state_dict(plain.state_dict())


@pytest.mark.parametrize(
    "override, message",
    [
        ("[10]", r"must be class indices in \[0, 9\] \(MNIST's classes\), not all of them, got"),
        ("[0,1,2,3,4,5,6,7,8,9]", r"not all of them, got \[0, 1, 2, 3, 4, 5, 6, 7, 8, 9\]"),
        ("[-1]", r"must be a list, each an integer >= 0 \(class indices .* got \[-1\]"),
        ("3", r"must be a list, each an integer >= 0 \(class indices .* got 3$"),
        ("[a]", r"must be a list, each an integer >= 0 \(class indices .* got \['a'\]"),
    ],
)
def test_invalid_excluded_classes_are_one_line_each(override, message):
    found = problems(compose_cfg(f"data.exclude_classes={override}"))
    assert len(found) == 1 and found[0].startswith("data.exclude_classes ")
    assert re.search(message, found[0])


def test_valid_excluded_classes_pass_and_the_datamodule_refuses_the_rest(synthetic_root):
    assert problems(compose_cfg("data.exclude_classes=[9]", "data=fashion_mnist")) == []
    assert problems(compose_cfg("data.exclude_classes=[1,1,2]")) == []  # a repeat is harmless
    for bad in ([10], list(range(10)), [1.5], [True]):
        with pytest.raises(ValueError, match=r"exclude_classes must be class indices in \[0, 10\)"):
            ImageDataModule(root=str(synthetic_root), exclude_classes=bad)


# --- the AUROC ---


class Logged(SimpleNamespace):
    """Stands in for a LightningModule at the end of a test epoch: keeps what it is given."""

    def log(self, name, value, **kw):
        self.values[name] = float(value)


def test_auroc_is_sklearns_on_fixed_scores_across_batches():
    # errors of 0 .. 4 per image, with a separation that is neither 0.5 nor 1: the first batch
    # holds none above 1, the others some, which torchmetrics would turn into probabilities by a
    # sigmoid (batch by batch, so no longer in order) unless told they are scores
    rng = np.random.default_rng(0)
    errors = rng.gamma(0.5, 1.0, 300).astype(np.float32)
    labels = rng.integers(0, 10, 300)
    novel = np.isin(labels, [4, 8])
    errors[novel] += 0.3
    errors[:50] = np.minimum(errors[:50], 0.9)
    assert all(errors[lo : lo + 50].max() > 1 for lo in range(50, 300, 50))
    callback = NoveltyAUROC()
    callback.excluded = (4, 8)
    for lo in range(0, 300, 50):
        target = torch.zeros(50, 1, 2, 2)  # each image's error is its one value squared
        recon = torch.from_numpy(np.sqrt(errors[lo : lo + 50])).view(50, 1, 1, 1).expand_as(target)
        callback._update(MODEL_AUROC, recon, target, torch.from_numpy(novel[lo : lo + 50]).long())
    trainer = SimpleNamespace(strategy=SimpleNamespace(reduce=lambda t, reduce_op: t))
    module = Logged(values={})
    callback.finish(EvalContext(trainer, module, "test"))
    expected = roc_auc_score(novel, errors)
    assert 0.55 < expected < 0.95
    assert module.values[MODEL_AUROC] == pytest.approx(expected, abs=1e-6)


@pytest.fixture(scope="module")
def tested(synthetic_root):
    """A dense AE and its PCA trained without class 5, then tested with the novelty callback."""
    torch.manual_seed(0)
    dm = datamodule(synthetic_root, [5])
    model = DenseAE(latent_dim=4, hidden=[16])
    pca, novelty = PCABaseline(), NoveltyAUROC()
    trainer = quiet_trainer(max_epochs=1, limit_train_batches=3, callbacks=[pca])
    trainer.fit(model, datamodule=dm)
    tester = quiet_trainer(callbacks=[pca, novelty])
    tester.test(model, datamodule=dm)
    return dm, model, pca, dict(tester.callback_metrics)


def test_pca_is_fitted_on_the_training_split_without_the_excluded_classes(tested):
    dm, _, pca, _ = tested
    assert 5 not in dm.labels("train").tolist()
    expected = dm.images("train").flatten(1).mean(0).numpy()
    np.testing.assert_allclose(pca.pca.mean_, expected, atol=1e-6)


def test_model_and_pca_auroc_are_sklearns_on_the_test_reconstruction_errors(tested):
    dm, model, pca, metrics = tested
    dm.trainer = evaluating()
    batches = [dm.on_after_batch_transfer(b, 0) for b in dm.test_dataloader()]
    inputs = torch.cat([b["input"] for b in batches])
    targets = torch.cat([b["target"] for b in batches]).flatten(1).numpy()
    novel = torch.cat([b["label"] for b in batches]).numpy() == 5
    with torch.no_grad():
        recon = model.eval()(inputs)
    recon = recon.flatten(1).numpy()
    flat = inputs.flatten(1).numpy()
    pca_recon = pca.pca.inverse_transform(pca.pca.transform(flat))
    for name, r in ((MODEL_AUROC, recon), (PCA_AUROC, pca_recon)):
        expected = roc_auc_score(novel, ((r - targets) ** 2).mean(1))
        assert metrics[name].item() == pytest.approx(expected, abs=1e-5), name


def test_without_excluded_classes_nothing_is_logged(synthetic_root, caplog):
    dm = datamodule(synthetic_root)
    model = DenseAE(latent_dim=4, hidden=[16])
    trainer = quiet_trainer(limit_test_batches=2, callbacks=[PCABaseline(), NoveltyAUROC()])
    trainer.test(model, datamodule=dm)
    assert "pca/test_mse" in trainer.callback_metrics
    assert not {MODEL_AUROC, PCA_AUROC} & set(trainer.callback_metrics)
    assert "novelty" not in caplog.text


# --- the preset ---


def test_the_preset_sweeps_every_class_and_its_summary_averages_over_them():
    cfg = compose_cfg("experiment=novelty")
    params = cfg.hydra.sweeper.params
    models = params.model.split(",")
    assert len(models) >= 3
    classes = params["data.exclude_classes"]
    assert classes == ",".join(f"[{k}]" for k in range(10))
    average_over = list(cfg.report.average_over)
    assert "data.exclude_classes" in average_over
    # its results-page section (scripts/results_novelty.py) covers the same models
    assert set(models) <= set(results_sweep.presets()["novelty"]["novelty"]["models"])
    # a finished sweep of it: one row per model, the mean over the classes left out
    rng = np.random.default_rng(0)
    rows = [
        {
            "job": f"{m}-{k}",
            "overrides": f"model={m} data.exclude_classes=[{k}]",
            "status": "completed",
            "model": m,
            MODEL_AUROC: float(rng.uniform()),
        }
        for m in models
        for k in range(10)
    ]
    grouped = groups.group_rows(rows, average_over)
    assert [g["overrides"] for g in grouped] == sorted(f"model={m}" for m in models)
    for g in grouped:
        values = [r[MODEL_AUROC] for r in rows if r["model"] == g["model"]]
        assert g[MODEL_AUROC].n == 10
        assert g[MODEL_AUROC].mean == pytest.approx(np.mean(values))
        assert g[MODEL_AUROC].std == pytest.approx(np.std(values, ddof=1))


# --- as a user runs it ---


@pytest.mark.integration
def test_a_run_without_a_class_records_both_aurocs(tmp_path, mnist_root):
    run = tmp_path / "run"
    overrides = (*TINY, "threads=1", "model=ae", "latent=8", "data.exclude_classes=[1]")
    run_in_process(*overrides, run_dir=run, data_root=mnist_root)
    metrics = records.read_metrics(run)
    for name in (MODEL_AUROC, PCA_AUROC):
        assert 0.0 <= metrics[name] <= 1.0, name
