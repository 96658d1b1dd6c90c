"""Downstream classification: does a reconstruction keep what makes an image its class?

A CNN trained on the run's dataset's clean images classifies the original test images, the
model's reconstructions and PCA's at the same bottleneck size. The reference study measured
98.89% / 98.27% / 98.22% on MNIST.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities.seed import isolate_rng
from torchmetrics.classification import MulticlassAccuracy

from ae_lab.callbacks.common import TestStageCallback, find_callback, writes_files
from ae_lab.callbacks.pca import pca_reconstruction
from ae_lab.core import checkpoints
from ae_lab.core.errors import ConfigError
from ae_lab.core.locks import file_lock
from ae_lab.data.contract import ImageData, clean_image
from ae_lab.data.datamodule import ImageDataModule
from ae_lab.models.base import AutoencoderModule, SchedulerFactory
from ae_lab.models.classifier import CNNClassifier
from ae_lab.models.vae import is_variational  # the models sample quality scores

log = logging.getLogger(__name__)

# seconds per training image and epoch of the classifier on one CPU thread, for the line that
# announces its training (3 epochs of 55,000 MNIST images took about 90 s on one thread of a
# 2-core machine at load 3; the course report's classifier job about 48 s an epoch at load 2-4)
CPU_S_PER_IMAGE = 0.0005


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


def train_classifier(
    root: str,
    epochs: int,
    seed: int = 0,
    batch_size: int = 128,
    lr: float = 1e-3,
    dropout: float = 0.25,
    val_size: int = 5_000,
    split_seed: int = 42,
    accelerator: str = "auto",
    scheduler: SchedulerFactory | None = None,
    dataset: str = "mnist",
) -> CNNClassifier:
    """ae_lab's own CNN, datamodule and Trainer, on ``dataset``'s clean images, with a fixed seed.

    Runs inside another run's hooks, so the caller's random state is saved and restored.
    """
    with isolate_rng():
        L.seed_everything(seed, workers=True, verbose=False)
        data = ImageDataModule(
            dataset,
            root=root,
            batch_size=batch_size,
            val_size=val_size,
            split_seed=split_seed,
            seed=seed,
        )
        model = CNNClassifier(
            dropout=dropout,
            n_classes=len(data.class_names),
            optimizer=lambda params: torch.optim.Adam(params, lr=lr),
            image_shape=data.image_shape,
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


# images the classifier takes at once: its activations of a 1000-image test batch (100 MB after
# the first convolution) leave the CPU's cache, and slices of 128 took half the time on one thread
CLASSIFY_CHUNK = 128


def classify(classifier: CNNClassifier, images: torch.Tensor) -> torch.Tensor:
    """The classifier's logits of ``images``, ``CLASSIFY_CHUNK`` images at a time."""
    return torch.cat([classifier(part.float()) for part in images.split(CLASSIFY_CHUNK)])


class FiniteAccuracy(MulticlassAccuracy):
    """Accuracy of class scores, NaN when any image's scores are not finite: an image that is not
    finite (a diverged model's reconstruction) has no class, and the class its NaN scores happen
    to pick is no result. The count of such images is a state, reduced across DDP processes
    like the hits, so every process computes the same value."""

    def __init__(self, num_classes: int) -> None:
        super().__init__(num_classes, average="micro")
        self.add_state("nonfinite", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        self.nonfinite += (~torch.isfinite(preds)).flatten(1).any(1).sum()
        super().update(preds, target)

    def compute(self) -> torch.Tensor:
        if self.nonfinite > 0:
            return torch.tensor(float("nan"), device=self.nonfinite.device)
        return super().compute()


class DownstreamClassification(TestStageCallback):
    """Logs ``downstream/acc_original``, ``downstream/acc_recon`` and ``downstream/acc_pca``:
    the accuracy of a fixed classifier on the clean test images, on the model's reconstructions
    (of the corrupted inputs, if a ``transform`` is set) and on PCA's, over the same test batches.
    The reconstructions are those the test step and the PCA baseline computed; the accuracies are
    ``FiniteAccuracy`` metrics, reduced across DDP processes by torchmetrics.

    ``checkpoint`` names a trained ``model=classifier`` checkpoint. Without one, a classifier is
    trained once with ``seed`` for ``epochs`` epochs on the run's dataset and split (one log line
    says so, with the time it should take) and cached in ``cache_dir`` (None: the user's cache
    folder, ``default_cache_dir``) under a name that hashes its settings and the data (one file
    per dataset); a lock file makes parallel jobs wait for the first one to finish training and
    then load its file, which is written by an atomic rename. Under DDP the first process loads
    (or trains) it and sends it to the others, as the PCA baseline does.

    Reconstructions that are not finite have no accuracy: their ``downstream/acc_*`` is NaN,
    with one warning, rather than whatever class a NaN image happens to score as.

    ``accuracies=False`` only provides the classifier to the evaluations that use it
    (``downstream_classifier``: the VAEs' sample quality), and only to the models they evaluate,
    so a report can score its VAEs' samples without paying for three classifier passes per job.
    """

    def __init__(
        self,
        checkpoint: str | None = None,
        cache_dir: str | None = None,
        epochs: int = 3,
        seed: int = 0,
        batch_size: int = 128,
        lr: float = 1e-3,
        scheduler: SchedulerFactory | None = None,
        accuracies: bool = True,
    ) -> None:
        self.checkpoint = checkpoint
        self.accuracies = accuracies
        self.cache_dir = cache_dir
        self.epochs = epochs
        self.seed = seed
        self.batch_size = batch_size
        self.lr = lr
        self.scheduler = scheduler or None  # the ``scheduler`` group's none is an empty node
        self.classifier: CNNClassifier | None = None
        self.accuracy: dict[str, FiniteAccuracy] = {}
        if checkpoint:  # before training, not after it, when the test would load it
            self.check_checkpoint(Path(checkpoint).expanduser())

    @classmethod
    def check_checkpoint(cls, path: Path) -> None:
        """Raises ``ConfigError`` unless ``path`` holds a classifier this callback can load."""
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
            cls._build(state.get("hyper_parameters", {}), state["state_dict"], torch.device("cpu"))
        except (KeyError, TypeError, AttributeError, RuntimeError):
            raise ConfigError(f"{key} holds no model=classifier weights. {use}") from None

    def cache_path(self, datamodule: ImageData) -> Path:
        """The cached checkpoint for these settings and this data (dataset, root, split)."""
        key = {
            "dataset": datamodule.dataset,
            "root": str(Path(datamodule.root).expanduser().resolve()),
            "val_size": datamodule.val_size,
            "split_seed": datamodule.split_seed,
            "epochs": self.epochs,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "scheduler": repr(self.scheduler),
        }
        digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
        folder = Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()
        return folder / f"classifier-{digest}.ckpt"

    def load_classifier(self, datamodule: ImageData, device: torch.device) -> CNNClassifier:
        if self.checkpoint:
            path = Path(self.checkpoint).expanduser()
            what = f"callbacks.downstream.checkpoint={path}"
        else:
            path = self.cache_path(datamodule)
            with file_lock(path.with_suffix(".lock")):
                if not path.exists():
                    n_images = training_images(datamodule)
                    log.info(
                        "downstream classifier: none cached for %s yet; training it once "
                        "(%d epochs of %s training images, %s), cached at %s for every later run",
                        datamodule.dataset,
                        self.epochs,
                        f"{n_images:,}" if n_images is not None else "its",
                        expected_training(n_images, self.epochs, device),
                        path,
                    )
                    model = train_classifier(
                        datamodule.root,
                        self.epochs,
                        self.seed,
                        self.batch_size,
                        self.lr,
                        val_size=datamodule.val_size,
                        split_seed=datamodule.split_seed,
                        accelerator="gpu" if device.type == "cuda" else "cpu",
                        scheduler=self.scheduler,
                        dataset=datamodule.dataset,
                    )
                    tmp = path.with_suffix(f".tmp{os.getpid()}")
                    hparams = dict(model.hparams)
                    state = {"state_dict": model.state_dict(), "hyper_parameters": hparams}
                    torch.save(state, tmp)
                    os.replace(tmp, path)
            what = f"the cached downstream classifier {path}"
        return self._load(path, device, what)

    @classmethod
    def _load(cls, path: Path, device: torch.device, what: str = "") -> CNNClassifier:
        """The classifier in ``path``, read as weights only; ``what`` names it in errors."""
        state = checkpoints.load(path, what or str(path), map_location=device)
        return cls._build(state.get("hyper_parameters", {}), state["state_dict"], device)

    @staticmethod
    def _build(
        saved: dict[str, Any], weights: dict[str, Any], device: torch.device
    ) -> CNNClassifier:
        hparams = {k: v for k, v in saved.items() if k in ("dropout", "n_classes", "image_shape")}
        model = CNNClassifier(**hparams)
        model.load_state_dict(weights)
        return model.to(device).eval()

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # here, not in a test hook: training needs gradients, which test loops switch off
        if self._needs_classifier(pl_module) and self.classifier is None:
            device = trainer.strategy.root_device
            state = None
            if writes_files(trainer):  # under DDP the first process loads or trains it
                model = self.load_classifier(trainer.datamodule, device)
                state = dict(model.hparams), {k: v.cpu() for k, v in model.state_dict().items()}
            self.classifier = self._build(*trainer.strategy.broadcast(state, src=0), device)

    def _needs_classifier(self, pl_module: L.LightningModule) -> bool:
        if self.accuracies:
            return isinstance(pl_module, AutoencoderModule)
        return is_variational(pl_module)

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.classifier is not None:
            self.classifier.to(pl_module.device)
        self.accuracy = {}

    @torch.no_grad()
    def _count(self, name: str, images: torch.Tensor, labels: torch.Tensor) -> None:
        assert self.classifier is not None
        metric = self.accuracy.get(name)
        if metric is None:
            n_classes = int(self.classifier.hparams.get("n_classes", 10))
            metric = self.accuracy[name] = FiniteAccuracy(n_classes).to(labels.device)
        metric.update(classify(self.classifier, images), labels)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dl_idx=0):
        if not self.accuracies or self.classifier is None:
            return
        if not isinstance(pl_module, AutoencoderModule):
            return
        labels = batch["label"]
        self._count("acc_original", clean_image(batch), labels)
        self._count("acc_recon", outputs["recon"], labels)
        pca = pca_reconstruction(trainer, outputs, batch)
        if pca is not None:  # PCA's pixels can leave [0, 1]; the model's are a sigmoid's
            self._count("acc_pca", pca.clamp(0.0, 1.0), labels)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        for name, metric in self.accuracy.items():
            value = metric.compute()  # every process's share (DDP)
            if value.isnan():
                log.warning("downstream/%s is NaN: some of its images are not finite", name)
            pl_module.log(f"downstream/{name}", value.float(), sync_dist=True)
        self.accuracy = {}


def downstream_classifier(trainer: L.Trainer) -> CNNClassifier | None:
    """The run's downstream classifier, loaded (or trained once and cached) by its
    ``DownstreamClassification`` callback as the test starts, on the model's device; None
    without that callback or for a model it does not evaluate. Every evaluation that needs a
    classifier of the run's images takes this one, so there is one per dataset."""
    callback = find_callback(trainer, DownstreamClassification)
    return callback.classifier if callback is not None else None
