"""The downstream classifier: ae_lab's CNN trained once on the run's dataset, cached, and loaded.

Several evaluations look at images through one classifier of the run's dataset (the downstream
accuracies, the VAEs' sample quality). ``ClassifierSource`` holds the settings
(``callbacks.downstream``), and the suite asks it once per run for the classifier
(``ClassifierSource.build``): a given checkpoint, else the cached one, else one trained now and
cached for every later run. The classifier is built for the run's images (``image_shape``) and
classes; a dataset of fewer than 2 classes has none, with one line saying why.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities.seed import isolate_rng

from ae_lab.core import checkpoints
from ae_lab.core.errors import ConfigError
from ae_lab.data.contract import ImageData
from ae_lab.data.datamodule import ImageDataModule
from ae_lab.models.base import SchedulerFactory
from ae_lab.models.classifier import CNNClassifier

log = logging.getLogger(__name__)

# seconds per training image and epoch of the classifier on one CPU thread, for the line that
# announces its training (3 epochs of 55,000 MNIST images took about 90 s on one thread of a
# 2-core machine at load 3; the course report's classifier job about 48 s an epoch at load 2-4)
CPU_S_PER_IMAGE = 0.0005
# the image shape CNNClassifier was first written for; any other is passed to it explicitly
MNIST_SHAPE = (1, 28, 28)
# images the classifier takes at once: its activations of a 1000-image test batch (100 MB after
# the first convolution) leave the CPU's cache, and slices of 128 took half the time on one thread
CLASSIFY_CHUNK = 128


def default_cache_dir() -> Path:
    """The user's cache folder for ae_lab: ``$AE_LAB_CACHE_DIR/ae_lab`` where that is set, else
    ``$XDG_CACHE_HOME/ae_lab``, else ``~/.cache/ae_lab``; never the current folder, so every run
    finds the one classifier, wherever it is started."""
    for var in ("AE_LAB_CACHE_DIR", "XDG_CACHE_HOME"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser() / "ae_lab"
    return Path.home() / ".cache" / "ae_lab"


def training_images(datamodule: ImageData) -> int | None:
    """The number of training images, None before the datamodule is set up."""
    try:
        return len(datamodule.labels("train"))
    except (AttributeError, KeyError):  # no splits yet
        return None


def expected_training(n_images: int | None, epochs: int, device: torch.device) -> str:
    """How long training the classifier should take here, in words, for the line announcing it."""
    if device.type != "cpu":
        return "about a minute on a GPU"
    if n_images is None:
        return "a few minutes on a CPU"
    threads = torch.get_num_threads()
    seconds = epochs * n_images * CPU_S_PER_IMAGE / threads
    unit = "thread" if threads == 1 else "threads"
    when = f"{seconds / 60:.0f} min" if seconds >= 90 else f"{math.ceil(seconds / 10) * 10:.0f} s"
    return f"about {when} on {threads} CPU {unit}"


def classifier_for(image_shape: tuple[int, ...], n_classes: int, **kwargs: Any) -> CNNClassifier:
    """A ``CNNClassifier`` for images of ``image_shape`` (C, H, W) in ``n_classes`` classes; the
    shape is passed only where it is not MNIST's, which every version of the class takes."""
    shape = tuple(int(v) for v in image_shape)
    if shape != MNIST_SHAPE:
        kwargs["image_shape"] = shape
    return CNNClassifier(n_classes=n_classes, **kwargs)


def train_classifier(
    data: ImageDataModule,
    epochs: int,
    seed: int = 0,
    lr: float = 1e-3,
    dropout: float = 0.25,
    accelerator: str = "auto",
    scheduler: SchedulerFactory | None = None,
) -> CNNClassifier:
    """ae_lab's own CNN and Trainer on ``data`` (the run's clean images, as
    ``ae_lab.data.learnt_from.clean_copy`` gives them), with a fixed seed, built for its
    ``image_shape`` and classes.

    Runs inside another run's hooks, so the caller's random state is saved and restored.
    """
    with isolate_rng():
        L.seed_everything(seed, workers=True, verbose=False)
        model = classifier_for(
            data.image_shape,
            len(data.class_names),
            dropout=dropout,
            optimizer=lambda params: torch.optim.Adam(params, lr=lr),
        )
        model.scheduler_factory = scheduler
        trainer = L.Trainer(
            max_epochs=epochs,
            accelerator=accelerator,
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
        )
        trainer.fit(model, datamodule=data)
    acc = trainer.callback_metrics.get("val/acc")
    log.info("downstream classifier: %d epochs, val/acc=%s", epochs, acc and f"{float(acc):.4f}")
    return model


def classify(classifier: CNNClassifier, images: torch.Tensor) -> torch.Tensor:
    """The classifier's logits of ``images``, ``CLASSIFY_CHUNK`` images at a time."""
    return torch.cat([classifier(part.float()) for part in images.split(CLASSIFY_CHUNK)])


def build_classifier(
    saved: dict[str, Any], weights: dict[str, Any], device: torch.device
) -> CNNClassifier:
    """The classifier saved with hyperparameters ``saved`` and ``weights``, in eval mode."""
    hparams = {k: v for k, v in saved.items() if k in ("dropout", "n_classes", "image_shape")}
    model = CNNClassifier(**hparams)
    model.load_state_dict(weights)
    return model.to(device).eval()


def load_classifier(path: Path, device: torch.device, what: str = "") -> CNNClassifier:
    """The classifier in ``path``, read as weights only; ``what`` names it in errors."""
    state = checkpoints.load(path, what or str(path), map_location=device)
    return build_classifier(state.get("hyper_parameters", {}), state["state_dict"], device)


def check_checkpoint(path: Path) -> None:
    """Raises ``ConfigError`` unless ``path`` holds a classifier the evaluations can load."""
    key = f"callbacks.downstream.checkpoint={path}"
    use = "Give a model=classifier run's checkpoints/last.ckpt, or null to train one"
    if not path.is_file():
        raise ConfigError(f"{key}: no such file. {use}")
    try:
        state = checkpoints.load(path, key)
    except checkpoints.UnsafeCheckpoint:
        raise
    except Exception as err:  # noqa: BLE001 - a damaged file, or none of torch's
        raise ConfigError(
            f"{key} cannot be read as a checkpoint ({type(err).__name__}). {use}"
        ) from None
    # what ae_lab.run.resume.ExactResume records: the class of the model that saved it
    meta = state.get("ae_lab") if isinstance(state, dict) else None
    saved = meta.get("model") if isinstance(meta, dict) else None
    if saved not in (None, CNNClassifier.__name__):
        raise ConfigError(f"{key} was saved by a {saved} model, not a classifier. {use}")
    try:
        build_classifier(
            state.get("hyper_parameters", {}), state["state_dict"], torch.device("cpu")
        )
    except (KeyError, TypeError, AttributeError, RuntimeError):
        raise ConfigError(f"{key} holds no model=classifier weights. {use}") from None
