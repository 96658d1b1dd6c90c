"""Datasets of any shape, end to end: every model of conf/model/ through the entrypoint in this
process, with every evaluation (``callbacks=full``, each cost turned down), on a small SVHN-format
set (3x32x32) and on a folder of PNGs of mixed sizes, grey and colour, read in colour at a size no
stage halves evenly. The downstream classifier learns from each run's own images: its input is the
dataset's shape, and two folders are two entries of its cache."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import get_class, instantiate

from ae_lab.core.errors import ConfigError
from ae_lab.data import ImageDataModule, PixelMask
from ae_lab.evaluation.classifier import classify, load_classifier
from ae_lab.evaluation.classifier_source import ClassifierSource
from ae_lab.evaluation.latent_map import plot_map
from ae_lab.models import CNNClassifier
from tests.conftest import AUTOENCODERS, MODEL_CONFIGS, MODELS, TINY, run_in_process
from tests.test_any_shape_data import write_svhn
from tests.test_folder_data import write_image

# a folder's images: (class folder, how many, colour of their square, PIL mode, base size)
CLASSES = {
    "boats": (24, (255, 40, 0), "RGB", (40, 30)),
    "clouds": (20, (0, 60, 255), "RGB", (30, 52)),
    "roads": (20, (200, 200, 200), "L", (23, 37)),
}
FOLDER_SIZE = (22, 26)  # (height, width): neither side divisible by 4
EXCLUDED = 1  # a class left out of training in every run: the novelty evaluation scores it

# callbacks=full with every cost knob turned down (conf/callbacks/full.yaml)
CHEAP_FULL = (
    "callbacks=full",
    "callbacks.latent_map.n_points=30",
    "callbacks.latent_map.max_iter=250",
    "callbacks.downstream.epochs=1",
    "callbacks.downstream.batch_size=32",
    "callbacks.nll.n_samples=4",
    "callbacks.probe.n_train=60",
    "callbacks.probe.per_class=[5]",
    "callbacks.probe.max_iter=100",
    "callbacks.samples.n_samples=16",
    "callbacks.generation.n_samples=4",
    "callbacks.generation.n_pairs=2",
    "callbacks.generation.steps=3",
)
COMMON = (*TINY, "threads=1", "latent=4", "logger=csv", "data.batch_size=16")


def variational(model: str) -> bool:
    """Whether ``model``'s objective has a prior and a likelihood (VAE, IWAE...)."""
    objective = MODEL_CONFIGS[model].get("objective")
    return objective is not None and bool(get_class(objective._target_).variational)


def write_pictures(root: Path, seed: int = 0) -> Path:
    """PNGs in one sub-folder per class, of mixed sizes, colour and grey files; ``seed`` moves
    every image's size, so two folders hold different images."""
    for name, (n, colour, mode, (w, h)) in CLASSES.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            grey = mode if i % 3 else ("RGB" if mode == "L" else "L")  # both kinds in a class
            size = (w + 2 * i + seed, h + (i * 5) % 11 + seed)
            write_image(folder / f"{name}_{i:02d}.png", colour, grey, size)
    return root


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, tuple[str, ...]]]:
    """Each dataset's data root and the overrides that read it."""
    base = tmp_path_factory.mktemp("any_shape")
    svhn = write_svhn(base / "svhn", n_train=240, n_test=80)
    pictures = write_pictures(base / "pictures")
    return {
        "svhn": (svhn, ("data=svhn", "data.val_size=40")),
        "folder": (
            base,
            (
                "data=folder",
                f"data.path={pictures}",
                f"data.image_size=[{FOLDER_SIZE[0]},{FOLDER_SIZE[1]}]",
                "data.channels=3",
                "data.val_size=8",
            ),
        ),
    }


SHAPES = {"svhn": (3, 32, 32), "folder": (3, *FOLDER_SIZE)}
N_CLASSES = {"svhn": 10, "folder": len(CLASSES)}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The downstream classifier's cache, one for every run of this module."""
    return tmp_path_factory.mktemp("classifier_cache")


def run(dataset: str, model: str, datasets, cache: Path, tmp_path: Path, *extra: str):
    root, data = datasets[dataset]
    target = ("data.binarize_target=sample",) if variational(model) else ()
    excluded = (f"data.exclude_classes=[{EXCLUDED}]",) if model in AUTOENCODERS else ()
    return run_in_process(
        *data,
        f"model={model}",
        *COMMON,
        *CHEAP_FULL,
        f"callbacks.downstream.cache_dir={cache}",
        *excluded,
        *target,
        *extra,
        run_dir=tmp_path / "run",
        data_root=root,
    )


def finite(metrics: dict, name: str, low: float = -math.inf, high: float = math.inf) -> float:
    assert name in metrics, f"{name} not logged; logged: {sorted(metrics)}"
    value = float(metrics[name])
    assert math.isfinite(value) and low <= value <= high, (name, value)
    return value


@pytest.mark.parametrize("dataset", ["svhn", "folder"])
@pytest.mark.parametrize("model", MODELS)
def test_every_model_runs_every_evaluation_on_any_shape(dataset, model, datasets, cache, tmp_path):
    result = run(dataset, model, datasets, cache, tmp_path)
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    figures = result.run_dir / "figures"
    if model not in AUTOENCODERS:  # the classifier trains and tests on the same images
        finite(metrics, "test/acc", 0, 1)
        return
    finite(metrics, "test/mse", 0, 1)
    finite(metrics, "pca/test_mse", 0)
    for name in ("acc_original", "acc_recon", "acc_pca"):
        finite(metrics, f"downstream/{name}", 0, 1)
    for name in ("probe/acc", "probe/acc_5", "pca/probe_acc", "pca/probe_acc_5"):
        finite(metrics, name, 0, 1)
    assert metrics["probe/n_classes"] == N_CLASSES[dataset] - 1
    finite(metrics, "novelty/auroc", 0, 1)
    finite(metrics, "pca/novelty_auroc", 0, 1)
    per_class = [k for k in range(N_CLASSES[dataset]) if f"test/mse_digit/{k}" in metrics]
    assert EXCLUDED in per_class and len(per_class) >= 2
    for k in per_class:
        finite(metrics, f"test/mse_digit/{k}", 0, 1)
    log = (result.run_dir / "train.log").read_text()
    for name in ("reconstructions", "interpolations"):
        assert (figures / f"{name}.png").is_file(), name
    # two training batches may collapse a bottleneck: then one line says so, and no map
    assert (figures / "latent_map.png").is_file() or "latent map skipped: all " in log
    if variational(model):
        finite(metrics, "samples/fd", 0)
        finite(metrics, "samples/confident", 0, 1)
        finite(metrics, "samples/class_entropy", 0, math.log(N_CLASSES[dataset]) + 1e-6)
        finite(metrics, "test/nll", 0)
        assert (figures / "prior_samples.png").is_file()
    else:
        assert "samples/fd" not in metrics and "test/nll" not in metrics
    # the class names of the data in the run's table, the excluded class among them
    table = log.split("test MSE per class:\n", 1)[1].splitlines()[1 : 1 + len(per_class)]
    names = list(CLASSES) if dataset == "folder" else list("0123456789")
    assert [row.split("  ")[0].strip() for row in table] == [names[k] for k in per_class]


@pytest.mark.parametrize("dataset", ["svhn", "folder"])
def test_the_downstream_classifier_learns_from_the_runs_own_images(
    dataset, datasets, cache, tmp_path
):
    result = run(dataset, "ae", datasets, cache, tmp_path)
    entries = [load_classifier(p, torch.device("cpu")) for p in cache.glob("classifier-*.ckpt")]
    [own] = [c for c in entries if tuple(c.image_shape) == SHAPES[dataset]]
    assert own.hparams["n_classes"] == N_CLASSES[dataset]  # every class, the excluded one too
    # what the run logged is that classifier's accuracy on the run's own test images
    root = datasets[dataset][0]
    data = instantiate(result.cfg.data, root=str(root), download=False)
    data.setup("test")
    n = 2 * 16  # debug=tiny's two test batches of data.batch_size
    images, labels = data.images("test")[:n], data.labels("test")[:n]
    with torch.no_grad():
        hits = (classify(own, images).argmax(1) == labels).float().mean()
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["downstream/acc_original"] == pytest.approx(float(hits), abs=1e-6)


def test_two_folders_and_one_folder_at_two_sizes_are_three_cached_classifiers(datasets, tmp_path):
    root, data = datasets["folder"]
    other = write_pictures(tmp_path / "other_pictures", seed=3)
    cache = tmp_path / "cache"
    runs = iter(range(4))

    def classify(*overrides: str) -> None:
        run_in_process(
            *data,
            "model=ae",
            *COMMON,
            "callbacks=none",
            "+callbacks.downstream._target_=ae_lab.evaluation.DownstreamClassification",
            f"+callbacks.downstream.cache_dir={cache}",
            "+callbacks.downstream.epochs=1",
            *overrides,
            run_dir=tmp_path / f"run{next(runs)}",
            data_root=root,
        )

    classify()
    classify(f"data.path={other}")
    classify("data.image_size=20")
    entries = sorted(cache.glob("classifier-*.ckpt"))
    assert len(entries) == 3
    shapes = sorted(tuple(load_classifier(p, torch.device("cpu")).image_shape) for p in entries)
    assert shapes == sorted([SHAPES["folder"], SHAPES["folder"], (3, 20, 20)])
    classify()  # the first folder again: found, not trained again
    assert len(list(cache.glob("classifier-*.ckpt"))) == 3


@pytest.mark.parametrize("n_classes", [3, 10, 12, 25])
def test_the_latent_map_gives_every_class_its_own_colour(n_classes):
    labels = np.arange(n_classes).repeat(2)
    points = np.random.default_rng(0).normal(size=(len(labels), 2))
    fig = plot_map(points, labels, "map", [f"class {k}" for k in range(n_classes)])
    scatter = fig.axes[0].collections[0]
    colours = {tuple(np.round(rgba, 4)) for rgba in scatter.to_rgba(np.arange(n_classes))}
    assert len(colours) == n_classes
    ticks = [t.get_text() for t in fig.axes[1].get_yticklabels()]
    assert ticks == [f"class {k}" for k in range(n_classes)]


def test_a_classifier_with_fewer_outputs_than_the_folders_classes_ends_in_one_line(
    datasets, tmp_path
):
    root, data = datasets["folder"]
    result = run_in_process(
        *data,
        "model=classifier",
        "model.n_classes=2",
        *COMMON,
        "callbacks=none",
        run_dir=tmp_path / "run",
        data_root=root,
        check=False,
    )
    assert result.code == 2
    assert (
        result.message
        == "model.n_classes=2 but the data has 3 classes; set model.n_classes=3 (or more)"
    )


# --- the classifier's cache key, without training


def folder_path(datasets) -> Path:
    """The folder of pictures the ``datasets`` fixture wrote."""
    return Path(next(o for o in datasets["folder"][1] if o.startswith("data.path=")).split("=")[1])


def folder_data(path: Path, **kw) -> ImageDataModule:
    kw = {"image_size": list(FOLDER_SIZE), "channels": 3, "test_fraction": 0.2, **kw}
    return ImageDataModule("folder", path=str(path), val_size=8, download=False, **kw)


def test_a_named_datasets_cache_key_is_the_one_it_always_was(synthetic_root, tmp_path):
    source = ClassifierSource(cache_dir=str(tmp_path), epochs=2, seed=1, batch_size=64, lr=0.01)
    data = ImageDataModule("mnist", root=str(synthetic_root), val_size=100, split_seed=7)
    key = {  # the key ae_lab has cached MNIST-like classifiers by, so those files are found
        "dataset": "mnist",
        "root": str(synthetic_root.resolve()),
        "val_size": 100,
        "split_seed": 7,
        "epochs": 2,
        "seed": 1,
        "batch_size": 64,
        "lr": 0.01,
        "scheduler": repr(None),
    }
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    assert source.cache_path(data) == tmp_path / f"classifier-{digest}.ckpt"
    # the run's corruption, target and excluded classes are not what the classifier learns from
    other = ImageDataModule(
        "mnist",
        root=str(synthetic_root),
        val_size=100,
        split_seed=7,
        corruption=PixelMask(0.5),
        binarize_target="sample",
        exclude_classes=[3],
        batch_size=7,
    )
    assert source.cache_path(other) == source.cache_path(data)


def test_a_folders_cache_key_follows_its_path_size_and_files_not_data_root(datasets, tmp_path):
    source = ClassifierSource(cache_dir=str(tmp_path / "cache"))
    copy = tmp_path / "copy"
    shutil.copytree(folder_path(datasets), copy)
    first = source.cache_path(folder_data(copy))
    assert source.cache_path(folder_data(copy, root="/elsewhere")) == first  # root not read
    assert source.cache_path(folder_data(Path(os.path.relpath(copy)))) == first  # resolved
    assert source.cache_path(folder_data(copy, image_size=20)) != first
    assert source.cache_path(folder_data(copy, channels=1)) != first
    assert source.cache_path(folder_data(copy, test_fraction=0.3)) != first
    assert source.cache_path(folder_data(copy, split_seed=3)) != first
    picture = next((copy / "boats").glob("*.png"))
    stat = picture.stat()
    os.utime(picture, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the file changed
    changed = source.cache_path(folder_data(copy))
    assert changed != first
    picture.rename(picture.with_name("renamed.png"))
    assert source.cache_path(folder_data(copy)) not in (first, changed)


def test_a_given_classifier_for_other_images_is_refused_in_one_line(datasets, tmp_path):
    path = tmp_path / "mnist_classifier.ckpt"
    model = CNNClassifier()  # MNIST's 1x28x28, ten classes
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, path)
    data = folder_data(folder_path(datasets))
    with pytest.raises(ConfigError) as err:
        ClassifierSource(checkpoint=str(path)).load(data, torch.device("cpu"))
    assert str(err.value) == (
        f"callbacks.downstream.checkpoint={path} takes images of [1, 28, 28], the run's are "
        f"[3, {FOLDER_SIZE[0]}, {FOLDER_SIZE[1]}]; give a classifier trained on this data, or "
        "callbacks.downstream.checkpoint=null to train one"
    )


def test_a_run_given_a_classifier_for_other_images_ends_in_one_line(datasets, tmp_path):
    root, data = datasets["folder"]
    path = tmp_path / "mnist_classifier.ckpt"
    model = CNNClassifier()
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, path)
    result = run_in_process(
        *data,
        "model=ae",
        *COMMON,
        "callbacks=none",
        "+callbacks.downstream._target_=ae_lab.evaluation.DownstreamClassification",
        f"+callbacks.downstream.checkpoint={path}",
        run_dir=tmp_path / "run",
        data_root=root,
        check=False,
    )
    assert result.code == 2
    assert result.err.splitlines()[-1].startswith(
        f"ae_lab: callbacks.downstream.checkpoint={path} takes images of [1, 28, 28]"
    )
    assert "Traceback" not in result.err
