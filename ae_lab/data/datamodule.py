"""One LightningDataModule for every dataset: a seeded split, served from one resident tensor."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch

from ae_lab.core.errors import AeLabError
from ae_lab.core.values import is_int
from ae_lab.data.contract import CLEAN
from ae_lab.data.definition import DatasetDefinition, definition
from ae_lab.data.files import load_raw, torchvision_class
from ae_lab.data.loader import Numbered, TensorBatchLoader, classic_loader
from ae_lab.data.transforms import Corruption, NoCorruption

log = logging.getLogger(__name__)


class ImageDataModule(L.LightningDataModule):
    """Seeded train/val split of a dataset's training images; its official test images as the
    test set. ``dataset`` names its definition (``ae_lab/data/datasets/<dataset>.py``); all else
    is the same for every dataset. What models and callbacks rely on is ``ae_lab.data.ImageData``.

    Batches come out as ``{"input", "target", "label"}``: ``target`` is the clean image and
    ``input`` the same image after the configured corruption, applied to the whole batch on the
    device it lives on. Validation and test corruption is re-seeded on every pass, so their curves
    measure the model and not the noise draw.

    ``fast=True`` (default) keeps every image in one uint8 tensor on the training device and
    slices batches from it; ``fast=False`` is the classic torchvision ``ToTensor`` + ``DataLoader``
    path, kept for comparison (``make bench``) and for users who need workers.

    ``binarize_target`` ("threshold" or "sample") makes the clean image itself binary before
    the corruption, so a VAE's Bernoulli likelihood is a true likelihood and its test NLL compares
    with the literature's binarized-MNIST figures. The batch then also holds the clean image as
    ``clean``, which every MSE is measured against (``ae_lab.data.contract.clean_image``).

    ``exclude_classes`` (class indices) leaves those classes out of the training and validation
    splits and keeps them in the test split: the model, and the PCA baseline fitted on
    ``images("train")``, never see them, so their test reconstruction error can flag them as novel
    (``ae_lab.evaluation.novelty``). The split itself is the same as without them: the validation
    images are those of every other run minus the excluded classes.

    There is no cache of the decoded tensor: torchvision reads the raw files in about 0.2 s, a
    cached tensor would save about 0.1-0.3 s of a start-up that imports dominate
    (docs/benchmarks.md), and the data folder may well be read-only.
    """

    def __init__(
        self,
        dataset: str = "mnist",
        root: str = "data",
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        val_size: int = 5_000,
        split_seed: int = 42,
        seed: int = 0,
        corruption: Corruption | None = None,
        fast: bool = True,
        on_device: bool = True,
        num_workers: int = 0,
        pin_memory: bool = False,
        download: bool = True,
        binarize_target: str | None = None,
        exclude_classes: Sequence[int] = (),
        image_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.dataset = dataset
        self.definition: DatasetDefinition = definition(dataset)
        if image_shape is not None and tuple(image_shape) != tuple(self.definition.image_shape):
            raise AeLabError(
                f"data.image_shape={list(image_shape)} but {self.definition.name} images are "
                f"{list(self.definition.image_shape)}; leave data.image_shape to the dataset"
            )
        self.exclude_classes = excluded_classes(exclude_classes, self.definition.n_classes)
        self.root = root
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.val_size = val_size
        self.split_seed = split_seed
        self.seed = seed
        self.corruption = corruption or NoCorruption()
        self.fast = fast
        self.on_device = on_device
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.download = download
        self.binarize_target = binarize_target
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._generators: dict[tuple[str, torch.device], torch.Generator] = {}
        self._train_order: torch.Generator | None = None
        self._resumed: dict[str, torch.Tensor] = {}

    @property
    def class_names(self) -> tuple[str, ...]:
        """The definition's labels, else torchvision's class names for the dataset."""
        return self.definition.classes or tuple(torchvision_class(self.definition).classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.definition.image_shape

    def prepare_data(self) -> None:
        for train in (True, False):
            load_raw(self.dataset, self.root, train=train, download=self.download)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        train_x, train_y = load_raw(self.dataset, self.root, train=True, download=self.download)
        test_x, test_y = load_raw(self.dataset, self.root, train=False, download=self.download)
        if self.val_size >= len(train_x):  # files smaller than the official ones (a subset)
            raise AeLabError(
                f"data.val_size={self.val_size} leaves no training images: the files in "
                f"{Path(self.root).resolve() / self.definition.folder / 'raw'} hold "
                f"{len(train_x):,}; set data.val_size below that"
            )
        val_idx, train_idx = self.split_indices(len(train_x))
        self.splits = {
            "train": self._without_excluded(train_x[train_idx], train_y[train_idx]),
            "val": self._without_excluded(train_x[val_idx], train_y[val_idx]),
            "test": (test_x, test_y),
        }
        device = self._device()
        if self.fast and device is not None:
            self.move_to(device)
        log.info(
            "%s from %s: %d train / %d val / %d test images%s%s",
            self.definition.name,
            Path(self.root).resolve(),
            len(self.splits["train"][0]),
            len(self.splits["val"][0]),
            len(test_x),
            f" resident on {device}" if self.fast and device is not None else "",
            f" (classes {list(self.exclude_classes)} left out of train and val)"
            if self.exclude_classes
            else "",
        )

    def _without_excluded(
        self, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.exclude_classes:
            return x, y
        keep = ~torch.isin(y, torch.tensor(self.exclude_classes, dtype=y.dtype))
        if not keep.any():  # files holding only the excluded classes (a subset)
            raise AeLabError(
                f"data.exclude_classes={list(self.exclude_classes)} leaves no training or "
                f"validation images in the files under {Path(self.root).resolve()}"
            )
        return x[keep], y[keep]

    def move_to(self, device: torch.device | str) -> None:
        """Keeps every split resident on ``device``: one copy of 47 MB, then batches are slices."""
        self.splits = {k: (x.to(device), y.to(device)) for k, (x, y) in self.splits.items()}

    def split_indices(self, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(validation, training) indices into the n training images (the dataset's count when
        None), fixed by ``split_seed``."""
        n = self.definition.train_images if n is None else n
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.split_seed))
        return perm[: self.val_size].sort().values, perm[self.val_size :].sort().values

    def images(self, split: str) -> torch.Tensor:
        """All images of a split as float in [0, 1], shape (N, 1, H, W), on the data's device."""
        x, _ = self.splits[split]
        return x.unsqueeze(1).float().div_(255.0)

    def labels(self, split: str) -> torch.Tensor:
        return self.splits[split][1]

    def _device(self) -> torch.device | None:
        if not self.on_device or self.trainer is None:
            return None
        return self.trainer.strategy.root_device

    def _loader(self, split: str, shuffle: bool) -> Any:
        x, y = self.splits[split]
        batch_size = self.batch_size if split == "train" else self.eval_batch_size
        if self.fast:
            # one shard per process under DDP (Lightning shards only torch DataLoaders itself)
            rank = getattr(self.trainer, "global_rank", 0)
            world = getattr(self.trainer, "world_size", 1)
            return TensorBatchLoader(
                x, y, batch_size, shuffle=shuffle, seed=self.seed, rank=rank, world_size=world
            )
        return classic_loader(
            x, y, batch_size, shuffle, self.seed, self.num_workers, self.pin_memory
        )

    def train_dataloader(self) -> Any:
        loader = self._loader("train", shuffle=True)
        self._train_order = loader.generator
        self._restore("train_order", self._train_order)
        return Numbered(loader)

    def val_dataloader(self) -> Any:
        return Numbered(self._loader("val", shuffle=False))

    def test_dataloader(self) -> Any:
        return Numbered(self._loader("test", shuffle=False))

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The random state that carries over from one epoch to the next, saved in checkpoints so
        that a resumed run draws the same batch order and training corruption as an unbroken one.
        (Evaluation corruption is re-seeded on every pass and needs none.)"""
        state = {}
        if self.exclude_classes:  # checked on resume: the batch order belongs to this split
            state["exclude_classes"] = torch.tensor(self.exclude_classes)
        if self._train_order is not None:
            state["train_order"] = self._train_order.get_state()
        for (kind, device), gen in self._generators.items():
            if kind == "train":
                state[f"train_corruption/{device.type}"] = gen.get_state()
        return state

    def load_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        # applied when the generators are made, which is after Lightning restores this state
        self._resumed = dict(state_dict)
        saved = tuple(self._resumed.pop("exclude_classes", torch.tensor([])).tolist())
        if saved != self.exclude_classes:
            raise AeLabError(
                f"the checkpoint was trained with data.exclude_classes={list(saved)}, this run has "
                f"data.exclude_classes={list(self.exclude_classes)}; continue it with the same "
                "setting, or start a new run"
            )

    def _restore(self, key: str, generator: torch.Generator) -> None:
        if key in self._resumed:
            generator.set_state(self._resumed.pop(key))

    def transfer_batch_to_device(
        self, batch: Any, device: torch.device, dataloader_idx: int
    ) -> Any:
        # Resident batches are already where they belong; Lightning's generic move walks the
        # batch's structure on every step only to find that out (about 10 us per step).
        if batch[0].device == device:
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> dict[str, torch.Tensor]:
        x, y, i = batch
        training = self.trainer is None or self.trainer.training
        gen = self._generator("train" if training else "eval", x.device)
        if not training:  # same corruption on every evaluation pass
            gen.manual_seed(self.seed * 1_000_003 + i)
        clean = x
        if self.binarize_target == "threshold":
            x = (x > 0.5).to(x.dtype)
        elif self.binarize_target == "sample":
            x = torch.bernoulli(x, generator=gen)
        batch = {"input": self.corruption(x, generator=gen), "target": x, "label": y}
        if x is not clean:  # MSEs stay against the clean image (ae_lab.data.contract.CLEAN)
            batch[CLEAN] = clean
        return batch

    def _generator(self, kind: str, device: torch.device) -> torch.Generator:
        key = (kind, device)
        if key not in self._generators:
            gen = torch.Generator(device=device).manual_seed(self.seed + 1)
            self._restore(f"{kind}_corruption/{device.type}", gen)
            self._generators[key] = gen
        return self._generators[key]


def excluded_classes(classes: Sequence[int], n_classes: int) -> tuple[int, ...]:
    """The distinct class indices to leave out of training, sorted; refuses indices outside
    ``[0, n_classes)`` and a list of every class (nothing would be left to train on)."""
    given = list(classes)
    if not all(is_int(k) and 0 <= k < n_classes for k in given) or len(set(given)) >= n_classes:
        raise ValueError(
            f"exclude_classes must be class indices in [0, {n_classes}), not all of them, "
            f"got {given}"
        )
    return tuple(sorted(set(given)))


class MNISTDataModule(ImageDataModule):
    """``ImageDataModule`` on MNIST, under the name code written before other datasets uses."""

    def __init__(self, root: str = "data", **kwargs: Any) -> None:
        super().__init__("mnist", root, **kwargs)
