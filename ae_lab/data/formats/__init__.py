"""One reader per file format, each a small module named by the format (a dataset definition's
``format``): ``idx`` (MNIST's files), ``svhn_mat`` (SVHN's .mat files), ``image_folder`` (a
folder of image files). Every reader offers the same four functions (``Reader``) and returns
images as uint8 (N, C, H, W) and labels as int64, so the datamodule is the same for every format.
Importing this package imports no reader (the config checks list the formats before torch loads).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import torch

    from ae_lab.data.definition import DatasetDefinition


@dataclass(frozen=True)
class Source:
    """Where a run's images are and how they are to be read: the data config's keys a reader
    may use (each reader takes those it needs)."""

    # the folder holding the downloaded sets (torchvision's layout) and whether to download
    root: Path
    download: bool = True
    # a folder of images (data=folder): its path, the (height, width) and channels its images
    # are brought to, the share of them held out as the test set, and the seed of that split
    path: Path | None = None
    size: tuple[int, int] | None = None
    channels: int | None = None
    test_fraction: float | None = None
    split_seed: int = 42


class Reader(Protocol):
    """What a format's module offers (its module-level functions)."""

    def prepare(self, data: DatasetDefinition, source: Source) -> None:
        """Downloads what is missing (where the format is downloaded) and checks the files."""

    def load(
        self, data: DatasetDefinition, source: Source, train: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(images as uint8 (N, C, H, W), labels as int64 (N,)) of the training or test set."""
        ...

    def class_names(self, data: DatasetDefinition, source: Source) -> tuple[str, ...]:
        """Label ``k``'s name, class 0 first."""
        ...

    def where(self, data: DatasetDefinition, source: Source) -> Path:
        """The folder the images are read from, for messages."""
        ...

    # optional: ``cache_key(data, source) -> dict``, what identifies the images it reads beyond
    # the dataset's name and split, for caches of what is learnt from them
    # (``ae_lab.data.learnt_from.data_key``); without it, the resolved ``data.root``


def reader(name: str) -> Reader | ModuleType:
    """The reader of format ``name`` (``ae_lab/data/formats/<name>.py``)."""
    return importlib.import_module(f"{__name__}.{name}")
