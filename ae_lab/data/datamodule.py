"""One LightningDataModule for every dataset: a seeded split, served from one resident tensor."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import lightning as L
import torch
from annotated_types import Ge, Gt, Lt, doc

from ae_lab.core.errors import AeLabError
from ae_lab.core.values import is_int
from ae_lab.data.batches import CorruptedBatches
from ae_lab.data.definition import DatasetDefinition, definition, sized_shape, square
from ae_lab.data.formats import Source, reader
from ae_lab.data.loader import Numbered, TensorBatchLoader, classic_loader
from ae_lab.data.transforms import Corruption, NoCorruption

log = logging.getLogger(__name__)

Side = Annotated[int, Ge(1)]
Seed = Annotated[int, Ge(0), Lt(2**32)]


class ImageDataModule(CorruptedBatches, L.LightningDataModule):
    """Seeded train/val split of a dataset's training images; its official test images as the
    test set (a folder of images: a seeded share of them). ``dataset`` names its definition
    (``ae_lab/data/datasets/<dataset>.py``), which names the reader of its files
    (``ae_lab/data/formats/``); all else is the same for every dataset and every shape. What
    models and callbacks rely on is ``ae_lab.data.ImageData``.

    Batches come out as ``{"input", "target", "label"}``: ``target`` is the clean image, float in
    [0, 1] of shape (B, C, H, W), and ``input`` the same image after the configured corruption,
    applied to the whole batch on the device it lives on. Validation and test corruption is
    re-seeded on every pass, so their curves measure the model and not the noise draw.

    ``fast=True`` (default) keeps every image in one uint8 tensor on the training device and
    slices batches from it, whatever the dataset; ``fast=False`` is the classic torchvision
    ``ToTensor`` + ``DataLoader`` path, kept for comparison (``make bench``) and for users who
    need workers.

    ``binarize_target`` ("threshold" or "sample") makes the clean image itself binary before
    the corruption, so a VAE's Bernoulli likelihood is a true likelihood and its test NLL compares
    with the literature's binarized-MNIST figures. The batch then also holds the clean image as
    ``clean``, which every MSE is measured against (``ae_lab.data.contract.clean_image``).

    ``exclude_classes`` (class indices) leaves those classes out of the training and validation
    splits and keeps them in the test split: the model, and the PCA baseline fitted on
    ``images("train")``, never see them, so their test reconstruction error can flag them as novel
    (``ae_lab.evaluation.novelty``). The split itself is the same as without them: the validation
    images are those of every other run minus the excluded classes.

    ``path``, ``image_size``, ``channels`` and ``test_fraction`` are a folder of images' own
    (``data=folder``); other datasets leave them None. ``image_shape`` is what the data config
    states (models are built for it); it must be the shape of the images read.

    There is no cache of the decoded tensor: torchvision reads MNIST's raw files in about 0.2 s, a
    cached tensor would save about 0.1-0.3 s of a start-up that imports dominate
    (docs/benchmarks.md), and the data folder may well be read-only.
    """

    def __init__(
        self,
        dataset: str = "mnist",
        root: str = "data",
        batch_size: Annotated[int, Ge(1)] = 128,
        eval_batch_size: Annotated[int, Ge(1)] | None = None,
        val_size: Annotated[
            int, Ge(1), doc("validation images taken from the training set")
        ] = 5_000,
        split_seed: Seed = 42,
        seed: Seed = 0,
        corruption: Corruption | None = None,
        fast: bool = True,
        on_device: bool = True,
        num_workers: Annotated[int, Ge(0), doc("DataLoader worker processes")] = 0,
        pin_memory: bool = False,
        download: bool = True,
        binarize_target: Literal["threshold", "sample"] | None = None,
        exclude_classes: Annotated[
            Sequence[Annotated[int, Ge(0)]],
            doc("class indices left out of training, e.g. [3]; [] for none"),
        ] = (),
        image_shape: Sequence[Side] | None = None,
        path: Annotated[str, doc("a folder of images (data=folder), e.g. data.path=~/pictures")]
        | None = None,
        image_size: Side | Sequence[Side] | None = None,
        channels: Literal[1, 3] | None = None,
        test_fraction: Annotated[float, Gt(0), Lt(1)] | None = None,
    ) -> None:
        super().__init__()
        self.dataset = dataset
        self.definition: DatasetDefinition = definition(dataset)
        self.reader = reader(self.definition.format)
        shape = self.definition.image_shape or sized_shape(channels, image_size)
        if shape is None:
            raise AeLabError(
                f"data.image_size={image_size} and data.channels={channels} give no image shape; "
                "data.image_size is a side >= 1 or [height, width], data.channels 1 or 3"
            )
        self._image_shape = tuple(shape)
        if image_shape is not None and tuple(image_shape) != self._image_shape:
            raise AeLabError(
                f"data.image_shape={list(image_shape)} but {self.definition.name} images are "
                f"{list(self._image_shape)}; leave data.image_shape to the dataset"
            )
        n_classes = self.definition.n_classes
        given = tuple(exclude_classes)
        self.exclude_classes = excluded_classes(given, n_classes) if n_classes else given
        self.root = root
        self.source = Source(
            root=Path(root),
            download=download,
            path=Path(path) if path is not None else None,
            size=square(image_size),
            channels=channels,
            test_fraction=test_fraction,
            split_seed=split_seed,
        )
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
        """The definition's labels, else the reader's (torchvision's class names, a folder's
        sub-folders)."""
        return self.definition.classes or self.reader.class_names(self.definition, self.source)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self._image_shape

    def prepare_data(self) -> None:
        self.reader.prepare(self.definition, self.source)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        train_x, train_y = self.reader.load(self.definition, self.source, train=True)
        test_x, test_y = self.reader.load(self.definition, self.source, train=False)
        where = self.reader.where(self.definition, self.source)
        for x in (train_x, test_x):
            if tuple(x.shape[1:]) != self._image_shape:
                raise AeLabError(
                    f"data.image_shape={list(self._image_shape)} but the images in {where} are "
                    f"{list(x.shape[1:])}; leave data.image_shape to the dataset"
                )
        if self.definition.n_classes is None and self.exclude_classes:
            self.exclude_classes = self._folder_exclusions(where)
        if self.val_size >= len(train_x):  # files smaller than the official ones (a subset)
            raise AeLabError(
                f"data.val_size={self.val_size} leaves no training images: the files in "
                f"{where} hold {len(train_x):,}; set data.val_size below that"
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
            "%s from %s: %d train / %d val / %d test images of %s%s%s",
            self.definition.name,
            where,
            len(self.splits["train"][0]),
            len(self.splits["val"][0]),
            len(test_x),
            "x".join(map(str, self._image_shape)),
            f" resident on {device}" if self.fast and device is not None else "",
            f" (classes {list(self.exclude_classes)} left out of train and val)"
            if self.exclude_classes
            else "",
        )

    def _folder_exclusions(self, where: Path) -> tuple[int, ...]:
        """``exclude_classes`` checked against the classes the data has, known once it is read."""
        n = len(self.class_names)
        try:
            return excluded_classes(self.exclude_classes, n)
        except ValueError:
            raise AeLabError(
                f"data.exclude_classes must be class indices in [0, {n - 1}] (the {n} classes "
                f"in {where}), not all of them, got {list(self.exclude_classes)}"
            ) from None

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
        """Keeps every split resident on ``device`` (MNIST: one copy of 47 MB; SVHN: 300 MB),
        then batches are slices."""
        self.splits = {k: (x.to(device), y.to(device)) for k, (x, y) in self.splits.items()}

    def split_indices(self, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(validation, training) indices into the n training images (the dataset's count when
        None), fixed by ``split_seed``."""
        n = self.definition.train_images if n is None else n
        if n is None:  # a folder: its count is known once it is read
            n = len(self.splits["train"][0]) + len(self.splits["val"][0])
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.split_seed))
        return perm[: self.val_size].sort().values, perm[self.val_size :].sort().values

    def images(self, split: str) -> torch.Tensor:
        """All images of a split as float in [0, 1], shape (N, C, H, W), on the data's device."""
        x, _ = self.splits[split]
        return x.float().div_(255.0)

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
