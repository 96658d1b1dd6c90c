"""The evaluation wing (``ae_lab/evaluation``): one suite, one record a batch, the shared PCA and
classifier built once and handed over, and the same numbers as the callbacks it replaced.

The reference runs train a tiny model on the synthetic files with a fixed seed and test it with
every evaluation of ``callbacks=full``. Their numbers are checked two ways: recomputed here from
the run's checkpoint with scikit-learn and plain torch (PCA, per-class MSE, novelty AUROC,
downstream accuracies), and against ``MAIN``, the values the callbacks gave before the wing
(recorded with ae_lab at commit aabed0c, the evaluations still in ``ae_lab/callbacks/``, by
running these same ``REFERENCE_RUNS`` through ``run_in_process``).
"""

from __future__ import annotations

import ast
import inspect
import logging
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hydra.utils import get_object, instantiate
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score

import ae_lab.evaluation
from ae_lab.core import checkpoints
from ae_lab.evaluation import base, record, suite
from ae_lab.evaluation.base import Evaluation
from ae_lab.evaluation.classifier import load_classifier
from ae_lab.evaluation.classifier_source import ClassifierSource
from ae_lab.run.train import CONFIG_DIR
from tests.conftest import SYNTHETIC, TINY, evaluating, run_in_process

EVALUATION_DIR = Path(ae_lab.evaluation.__file__).parent
CALLBACKS_DIR = EVALUATION_DIR.parent / "callbacks"

# the runs whose test metrics the wing must reproduce: every evaluation of callbacks=full on the
# synthetic files, a VAE (prior samples, likelihood: binary targets) trained without class 9
# (novelty), and a plain autoencoder on grey targets
EVALUATION_SIZES = (
    "callbacks.nll.n_samples=16",
    "callbacks.latent_map.n_points=60",
    "callbacks.latent_map.max_iter=250",
    "callbacks.probe.n_train=300",
    "callbacks.downstream.epochs=1",
)
REFERENCE_RUNS = {
    "vae": (
        "model=vae",
        "latent=4",
        "callbacks=full",
        "logger=none",
        "threads=1",
        "seed=3",
        "data.binarize_target=threshold",
        "data.exclude_classes=[9]",
        *EVALUATION_SIZES,
        *TINY,
        *SYNTHETIC,
    ),
    "ae": (
        "model=ae",
        "latent=3",
        "callbacks=full",
        "logger=none",
        "threads=1",
        "seed=5",
        *EVALUATION_SIZES,
        *TINY,
        *SYNTHETIC,
    ),
}
# what the evaluations logged before the wing (see the module's docstring), by run
MAIN = {
    "vae": {
        "downstream/acc_original": 0.6100000143051147,
        "downstream/acc_pca": 0.5299999713897705,
        "downstream/acc_recon": 0.07000000029802322,
        "novelty/auroc": 0.5448369383811951,
        "pca/n_components": 4.0,
        "pca/novelty_auroc": 0.9999999403953552,
        "pca/probe_acc": 1.0,
        "pca/probe_acc_100": 1.0,
        "pca/probe_acc_55": 1.0,
        "pca/test_mse": 0.022503942251205444,
        "pca/test_mse_digit/0": 0.012863213196396828,
        "pca/test_mse_digit/1": 0.022699905559420586,
        "pca/test_mse_digit/2": 0.016002777963876724,
        "pca/test_mse_digit/3": 0.022018922492861748,
        "pca/test_mse_digit/4": 0.016246795654296875,
        "pca/test_mse_digit/5": 0.0236977506428957,
        "pca/test_mse_digit/6": 0.014729347079992294,
        "pca/test_mse_digit/7": 0.017175445333123207,
        "pca/test_mse_digit/8": 0.02041497454047203,
        "pca/test_mse_digit/9": 0.07067938148975372,
        "pca/test_mse_target": 0.028823398053646088,
        "pca/val_mse": 0.018639834597706795,
        "pca/val_mse_target": 0.02425447665154934,
        "probe/acc": 1.0,
        "probe/acc_100": 1.0,
        "probe/acc_55": 1.0,
        "probe/n_classes": 9.0,
        "samples/class_entropy": 0.5392763614654541,
        "samples/confident": 0.0,
        "samples/fd": 5.632508754730225,
        "samples/fd_floor": 0.15794342756271362,
        "test/mse_digit/0": 0.17064933478832245,
        "test/mse_digit/1": 0.17105348408222198,
        "test/mse_digit/2": 0.16970404982566833,
        "test/mse_digit/3": 0.16976116597652435,
        "test/mse_digit/4": 0.1706566959619522,
        "test/mse_digit/5": 0.17132195830345154,
        "test/mse_digit/6": 0.17158545553684235,
        "test/mse_digit/7": 0.17066283524036407,
        "test/mse_digit/8": 0.17137235403060913,
        "test/mse_digit/9": 0.17101755738258362,
        "test/nll": 472.026123046875,
        "test/nll_k": 16.0,
    },
    "ae": {
        "downstream/acc_original": 0.6100000143051147,
        "downstream/acc_pca": 0.6100000143051147,
        "downstream/acc_recon": 0.07000000029802322,
        "pca/n_components": 3.0,
        "pca/probe_acc": 1.0,
        "pca/probe_acc_100": 1.0,
        "pca/probe_acc_55": 1.0,
        "pca/test_mse": 0.029055580496788025,
        "pca/test_mse_digit/0": 0.025325819849967957,
        "pca/test_mse_digit/1": 0.02498619258403778,
        "pca/test_mse_digit/2": 0.043626680970191956,
        "pca/test_mse_digit/3": 0.02923469990491867,
        "pca/test_mse_digit/4": 0.0276543740183115,
        "pca/test_mse_digit/5": 0.034411538392305374,
        "pca/test_mse_digit/6": 0.023867802694439888,
        "pca/test_mse_digit/7": 0.02461952716112137,
        "pca/test_mse_digit/8": 0.021436341106891632,
        "pca/test_mse_digit/9": 0.03361998498439789,
        "pca/val_mse": 0.029339605942368507,
        "probe/acc": 0.9700000286102295,
        "probe/acc_100": 0.9700000286102295,
        "probe/acc_55": 0.9700000286102295,
        "probe/n_classes": 10.0,
        "test/mse_digit/0": 0.18255087733268738,
        "test/mse_digit/1": 0.1822551041841507,
        "test/mse_digit/2": 0.1829773336648941,
        "test/mse_digit/3": 0.1832987666130066,
        "test/mse_digit/4": 0.182407945394516,
        "test/mse_digit/5": 0.18220731616020203,
        "test/mse_digit/6": 0.18297308683395386,
        "test/mse_digit/7": 0.18158119916915894,
        "test/mse_digit/8": 0.183493971824646,
        "test/mse_digit/9": 0.18200823664665222,
    },
}
# the names the evaluations log under (the model's own test step logs test/mse, test/loss, ...)
EVALUATION_METRICS = ("pca/", "downstream/", "probe/", "samples/", "novelty/", "test/mse_digit/",
                      "test/nll")  # fmt: skip
# the figures each run wrote before the wing
MAIN_FIGURES = {
    "vae": {"interpolations.png", "latent_map.npz", "latent_map.png", "prior_samples.png",
            "reconstructions.png"},
    "ae": {"interpolations.png", "latent_map.npz", "latent_map.png", "reconstructions.png"},
}  # fmt: skip


def full_evaluations() -> dict[str, type]:
    """Every evaluation ``conf/callbacks/full.yaml`` lists (its ``default`` included), by key."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        group = compose("config", overrides=["callbacks=full"]).callbacks
    found = {}
    for name, entry in group.items():
        target = entry.get("_target_") if entry is not None else None
        cls = get_object(target) if target else None
        if isinstance(cls, type) and issubclass(cls, Evaluation):
            found[str(name)] = cls
    return found


FULL = full_evaluations()


class Spy:
    """Counts, per evaluation class, the batches it was handed and the stages it finished, and
    every record the suite built, by stage and batch index."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.updates: Counter[str] = Counter()
        self.finished: Counter[str] = Counter()
        self.records: Counter[tuple[str, int]] = Counter()
        for cls in FULL.values():
            self._wrap(monkeypatch, cls, "update", self.updates)
            self._wrap(monkeypatch, cls, "finish", self.finished)
        build = record.build_record

        def counted(stage, index, *args, **kwargs):
            self.records[stage, index] += 1
            return build(stage, index, *args, **kwargs)

        monkeypatch.setattr(suite, "build_record", counted)

    @staticmethod
    def _wrap(monkeypatch, cls: type, method: str, counts: Counter) -> None:
        original = getattr(cls, method)

        def wrapped(self, ctx, *args):
            if type(self) is cls and ctx.stage == "test":
                counts[cls.__name__] += 1
            return original(self, ctx, *args)

        monkeypatch.setattr(cls, method, wrapped)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, synthetic_root) -> dict[str, SimpleNamespace]:
    """Each reference run, with what the spy saw of it and its classifier cache."""
    done = {}
    for name, overrides in REFERENCE_RUNS.items():
        tmp = tmp_path_factory.mktemp(name)
        with pytest.MonkeyPatch.context() as monkeypatch:
            spy = Spy(monkeypatch)
            run = run_in_process(
                *overrides,
                f"callbacks.downstream.cache_dir={tmp / 'cache'}",
                run_dir=tmp / "run",
                data_root=synthetic_root,
            )
        done[name] = SimpleNamespace(run=run, spy=spy, cache=tmp / "cache")
    return done


@pytest.mark.parametrize("name", REFERENCE_RUNS)
def test_the_wing_logs_what_the_callbacks_logged(reference, name) -> None:
    metrics = reference[name].run.metrics
    logged = {k for k in metrics if k.startswith(EVALUATION_METRICS)}
    assert logged == set(MAIN[name])  # none missing, none new
    for key, value in MAIN[name].items():
        assert metrics[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    figures = {p.name for p in (reference[name].run.run_dir / "figures").iterdir()}
    assert figures == MAIN_FIGURES[name]


def batches_of(run, root: Path, n: int = 2) -> tuple[object, list[dict[str, torch.Tensor]]]:
    """The run's datamodule (its files under ``root``) and first ``n`` test batches, as its test
    step got them (inputs corrupted alike)."""
    corruption = instantiate(run.cfg.transform)
    data = instantiate(run.cfg.data, root=str(root), download=False, corruption=corruption)
    data.prepare_data()
    data.setup("test")
    data.trainer = evaluating()
    loader = iter(data.test_dataloader())
    return data, [data.on_after_batch_transfer(next(loader), 0) for _ in range(n)]


@pytest.mark.parametrize("name", REFERENCE_RUNS)
def test_the_wing_gives_the_numbers_of_a_plain_recomputation(
    reference, synthetic_root, name
) -> None:
    """PCA, per-class MSE, novelty AUROC and downstream accuracies, recomputed from the run's
    checkpoint with scikit-learn and torch alone."""
    ref = reference[name]
    cfg, metrics = ref.run.cfg, ref.run.metrics
    data, batches = batches_of(ref.run, synthetic_root)
    model = instantiate(cfg.model, _convert_="all")
    state = checkpoints.load(ref.run.run_dir / "checkpoints" / "best.ckpt", "best")
    model.load_state_dict(state["state_dict"])
    model.eval()
    pca = PCA(int(cfg.latent), random_state=int(cfg.seed))
    pca.fit(data.images("train").flatten(1).numpy().astype(np.float32))
    with torch.no_grad():
        recon = torch.cat([model.shared_step(b).outputs()["recon"] for b in batches]).double()
    inputs = torch.cat([b["input"] for b in batches]).flatten(1).numpy()
    clean = torch.cat([b.get("clean", b["target"]) for b in batches]).double()
    labels = torch.cat([b["label"] for b in batches]).numpy()
    pca_recon = torch.from_numpy(pca.inverse_transform(pca.transform(inputs))).view_as(clean)

    def close(key: str, value: float) -> None:
        assert metrics[key] == pytest.approx(float(value), rel=1e-4, abs=1e-6), key

    per_image = {p: (r - clean).pow(2).flatten(1).mean(1) for p, r in
                 (("test/mse_digit", recon), ("pca/test_mse_digit", pca_recon))}  # fmt: skip
    close("pca/test_mse", per_image["pca/test_mse_digit"].mean())
    for k in np.unique(labels):
        for prefix, errors in per_image.items():
            close(f"{prefix}/{k}", errors[torch.from_numpy(labels == k)].mean())
    excluded = list(cfg.data.exclude_classes)
    if excluded:
        novel = np.isin(labels, excluded)
        close("novelty/auroc", roc_auc_score(novel, per_image["test/mse_digit"].numpy()))
        close("pca/novelty_auroc", roc_auc_score(novel, per_image["pca/test_mse_digit"].numpy()))
    [cached] = ref.cache.glob("classifier-*.ckpt")
    classifier = load_classifier(cached, torch.device("cpu"))
    with torch.no_grad():
        for key, images in (("original", clean), ("recon", recon), ("pca", pca_recon.clamp(0, 1))):
            hits = classifier(images.float()).argmax(1).numpy() == labels
            close(f"downstream/acc_{key}", hits.mean())


@pytest.mark.parametrize("name", FULL)
def test_every_evaluation_of_the_full_preset_runs(reference, name) -> None:
    """Each evaluation ``callbacks=full`` lists (read from conf/, none named here) was handed
    every test batch of the VAE run and finished its test once."""
    spy, cls = reference["vae"].spy, FULL[name].__name__
    n_batches = len({i for stage, i in spy.records if stage == "test"})
    assert n_batches == 2  # debug=tiny's test batches
    assert spy.updates[cls] == n_batches and spy.finished[cls] == 1


@pytest.mark.parametrize("name", REFERENCE_RUNS)
def test_one_record_is_built_per_batch(reference, name) -> None:
    records = reference[name].spy.records
    assert records and set(records.values()) == {1}  # every (stage, batch) once
    assert {stage for stage, _ in records} == {"val", "test"}
    assert sorted(i for stage, i in records if stage == "test") == [0, 1]


def imported_names(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every ``from <module> import <name>`` in ``path``."""
    tree = ast.parse(path.read_text())
    return [(n.module or "", a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
            for a in n.names]  # fmt: skip


@pytest.mark.parametrize("path", sorted(EVALUATION_DIR.glob("*.py")), ids=lambda p: p.name)
def test_no_evaluation_module_imports_another_evaluation(path) -> None:
    import importlib

    for module, name in imported_names(path):
        if module.startswith("ae_lab.evaluation.") and path.name != "__init__.py":
            thing = getattr(importlib.import_module(module), name)
            assert not (isinstance(thing, type) and issubclass(thing, Evaluation)) or (
                thing is Evaluation
            ), f"{path.name} imports the evaluation {name}"
    text = path.read_text()
    assert "find_callback" not in text and "trainer.callbacks" not in text


@pytest.mark.parametrize("path", sorted(CALLBACKS_DIR.glob("*.py")), ids=lambda p: p.name)
def test_the_plumbing_imports_no_evaluation(path) -> None:
    assert not [m for m, _ in imported_names(path) if m.startswith("ae_lab.evaluation")]
    assert "import ae_lab.evaluation" not in path.read_text()


def test_evaluations_state_their_ranges_in_their_signatures() -> None:
    for name, cls in FULL.items():
        for param in list(inspect.signature(cls).parameters.values()):
            assert param.annotation is not inspect.Parameter.empty, f"{name}.{param.name}"


# --- the downstream classifier: built for the run's data, or skipped with one line ---


def test_the_classifier_is_built_for_the_datasets_shape_and_classes(monkeypatch) -> None:
    from ae_lab.evaluation import classifier

    made = []
    monkeypatch.setattr(classifier, "CNNClassifier", lambda **kw: made.append(kw))
    classifier.classifier_for((1, 28, 28), 10, dropout=0.1)
    classifier.classifier_for((3, 32, 32), 5)
    assert made == [{"n_classes": 10, "dropout": 0.1}, {"n_classes": 5, "image_shape": (3, 32, 32)}]


def test_one_class_skips_the_classifier_evaluations_with_one_line(tmp_path, caplog) -> None:
    from ae_lab.evaluation import DownstreamClassification, SampleQuality
    from ae_lab.models.vae import DenseVAE

    datamodule = SimpleNamespace(class_names=("only",), exclude_classes=())
    trainer = SimpleNamespace(
        datamodule=datamodule, is_global_zero=True, strategy=None, sanity_checking=False
    )
    model = DenseVAE(latent_dim=2, hidden=[8]).eval()
    evaluations = [DownstreamClassification(cache_dir=str(tmp_path)), SampleQuality(n_samples=4)]
    runner = suite.EvaluationSuite(evaluations)
    with caplog.at_level(logging.INFO, logger="ae_lab"):
        runner.setup(trainer, model, "test")
        x = torch.rand(4, 1, 28, 28)
        batch = {"input": x, "target": x, "label": torch.zeros(4, dtype=torch.long)}
        with torch.no_grad():
            outputs = model.shared_step(batch).outputs()
        runner.on_test_epoch_start(trainer, model)
        runner.on_test_batch_end(trainer, model, outputs, batch, 0)
        runner.on_test_epoch_end(trainer, model)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("ae_lab.evaluation")]
    assert lines == [
        "downstream classifier skipped: the dataset has 1 class(es); a classifier needs at least "
        "2, so the evaluations that use one (downstream/*, samples/*) are skipped"
    ]
    assert runner.shared.classifier is None and not list(tmp_path.iterdir())  # nothing trained


def test_shared_things_are_handed_over_not_looked_up() -> None:
    """The suite builds the PCA from what ``callbacks.pca`` provides, and no evaluation of the
    full preset finds another: each declares what it provides."""
    provided = {key for cls in FULL.values() for key in cls().provides()}
    assert provided == {base.PCA, base.CLASSIFIER}
    source = FULL["downstream"]().provides()[base.CLASSIFIER]
    assert isinstance(source, ClassifierSource)


def test_the_suite_stands_where_the_first_evaluation_stood_and_trains_only_if_it_validates():
    from ae_lab.callbacks import EpochTimer
    from ae_lab.callbacks.common import TestStageCallback

    timer, later = EpochTimer(), EpochTimer()
    test_only = {k: FULL[k]() for k in FULL if "val" not in FULL[k].stages}
    gathered = suite.gather({"timer": timer, **test_only, "later": later})
    assert gathered[0] is timer and gathered[2] is later and len(gathered) == 3
    assert isinstance(gathered[1], TestStageCallback)  # joins the trainer for the test only
    assert list(gathered[1].evaluations) == list(test_only)
    every = {k: cls() for k, cls in FULL.items()}
    [both] = suite.gather(every)
    assert both.validates and not isinstance(both, TestStageCallback)
