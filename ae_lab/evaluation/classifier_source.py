"""Where the run's downstream classifier comes from: a checkpoint, the cache, or training now.

``ClassifierSource`` is built from ``callbacks.downstream``'s settings and answers the suite once
per run (``build``): the classifier on the run's device, or None and why.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch

from ae_lab.callbacks.common import writes_files
from ae_lab.core.errors import ConfigError
from ae_lab.core.locks import file_lock
from ae_lab.data.contract import ImageData
from ae_lab.data.datamodule import ImageDataModule
from ae_lab.data.learnt_from import clean_copy, data_key
from ae_lab.evaluation import classifier as clf
from ae_lab.models.base import SchedulerFactory
from ae_lab.models.classifier import CNNClassifier

log = logging.getLogger(__name__)


@dataclass
class ClassifierSource:
    """``checkpoint`` names a trained ``model=classifier`` checkpoint. Without one, a classifier
    is trained once with ``seed`` for ``epochs`` epochs on the run's own images and split,
    clean (``classifier_data``; one log line says so, with the time it should take) and cached
    in ``cache_dir`` (None: the user's cache folder, ``classifier.default_cache_dir``) under a
    name that hashes its settings and what identifies the data (``learnt_from.data_key``: one
    file per dataset, per folder and image shape); a lock file makes parallel jobs wait for the
    first one to finish training and then load its file, which is written by an atomic rename.
    Under DDP the first process loads (or trains) it and sends it to the others."""

    checkpoint: str | None = None
    cache_dir: str | None = None
    epochs: int = 3
    seed: int = 0
    batch_size: int = 128
    lr: float = 1e-3
    scheduler: SchedulerFactory | None = None

    def classifier_data(self, datamodule: ImageData) -> ImageDataModule:
        """What the classifier learns from: the run's images and split without its corruption
        (``learnt_from.clean_copy``); for a datamodule of another kind, its named dataset's."""
        if isinstance(datamodule, ImageDataModule):
            return clean_copy(datamodule, self.batch_size, self.seed)
        return ImageDataModule(
            datamodule.dataset,
            root=datamodule.root,
            batch_size=self.batch_size,
            val_size=datamodule.val_size,
            split_seed=datamodule.split_seed,
            seed=self.seed,
        )

    def cache_path(self, datamodule: ImageData) -> Path:
        """The cached checkpoint for these settings and the data the classifier learns from."""
        key = {
            **data_key(self.classifier_data(datamodule)),
            "epochs": self.epochs,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "scheduler": repr(self.scheduler),
        }
        digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
        folder = Path(self.cache_dir).expanduser() if self.cache_dir else clf.default_cache_dir()
        return folder / f"classifier-{digest}.ckpt"

    def load(self, datamodule: ImageData, device: torch.device) -> CNNClassifier:
        """The given checkpoint's classifier, else the cached one, trained and cached first when
        there is none yet; either must take the run's images (``fits``)."""
        if self.checkpoint:
            path = Path(self.checkpoint).expanduser()
            key = f"callbacks.downstream.checkpoint={path}"
            return fits(clf.load_classifier(path, device, key), datamodule, key)
        path = self.cache_path(datamodule)
        with file_lock(path.with_suffix(".lock")):
            if not path.exists():
                self._train_into(path, datamodule, device)
        what = f"the cached downstream classifier {path}"
        return fits(clf.load_classifier(path, device, what), datamodule, what)

    def _train_into(self, path: Path, datamodule: ImageData, device: torch.device) -> None:
        n_images = clf.training_images(datamodule)
        log.info(
            "downstream classifier: none cached for %s yet; training it once "
            "(%d epochs of %s training images, %s), cached at %s for every later run",
            datamodule.dataset,
            self.epochs,
            f"{n_images:,}" if n_images is not None else "its",
            clf.expected_training(n_images, self.epochs, device),
            path,
        )
        model = clf.train_classifier(
            self.classifier_data(datamodule),
            self.epochs,
            self.seed,
            self.lr,
            accelerator="gpu" if device.type == "cuda" else "cpu",
            scheduler=self.scheduler,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        state = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}
        torch.save(state, tmp)
        os.replace(tmp, path)

    def build(self, trainer: L.Trainer) -> tuple[CNNClassifier | None, str | None]:
        """The run's classifier on its device and None, or None and why there is none (said in
        one line here: a dataset of fewer than 2 classes)."""
        datamodule = trainer.datamodule
        n_classes = len(getattr(datamodule, "class_names", ()) or ())
        if n_classes < 2:
            why = (
                f"the dataset has {n_classes} class(es); a classifier needs at least 2, so the "
                "evaluations that use one (downstream/*, samples/*) are skipped"
            )
            if writes_files(trainer):
                log.warning("downstream classifier skipped: %s", why)
            return None, why
        device = trainer.strategy.root_device
        state = None
        if writes_files(trainer):  # under DDP the first process loads or trains it
            model = self.load(datamodule, device)
            state = dict(model.hparams), {k: v.cpu() for k, v in model.state_dict().items()}
        return clf.build_classifier(*trainer.strategy.broadcast(state, src=0), device), None


def fits(classifier: CNNClassifier, datamodule: ImageData, what: str) -> CNNClassifier:
    """``classifier`` where it takes the run's images and tells its classes apart; else one line
    (``ConfigError``) naming ``what`` and both shapes or class counts."""
    shape = tuple(datamodule.image_shape)
    n_classes = len(getattr(datamodule, "class_names", ()) or ())
    if tuple(classifier.image_shape) != shape:
        raise ConfigError(
            f"{what} takes images of {list(classifier.image_shape)}, the run's are {list(shape)}; "
            "give a classifier trained on this data, or callbacks.downstream.checkpoint=null to "
            "train one"
        )
    if classifier.hparams.get("n_classes", 10) < n_classes:
        raise ConfigError(
            f"{what} tells {classifier.hparams['n_classes']} classes apart, the run's data has "
            f"{n_classes}; give a classifier trained on this data, or "
            "callbacks.downstream.checkpoint=null to train one"
        )
    return classifier
