"""What makes one dataset differ from another: a small definition per dataset, read without torch.

The datamodule (``ae_lab.data.datamodule``) is the same for every dataset; a definition in
``ae_lab/data/datasets/<name>.py`` says how its files are stored (``format``: the reader in
``ae_lab/data/formats/<format>.py``), the shape of its images, how many there are, where
torchvision keeps and downloads them and what their classes are. ``data.dataset=<name>`` picks
one. The config checks read the definitions before torch loads, so this module and the
definitions import nothing heavy.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, kw_only=True)
class DatasetDefinition:
    """One dataset: its file format, the shape of its images and, where it is a published set,
    its sizes, sums and classes."""

    # as logs and messages name it, e.g. "Fashion-MNIST"
    name: str
    # how its files are stored: a module of ae_lab/data/formats/ reads them ("idx": MNIST's
    # files, "svhn_mat": SVHN's .mat files, "image_folder": a folder of image files)
    format: str
    # (channels, height, width) of every image; None where the data config's own keys set it
    # (a folder of images is resized to data.image_size, in data.channels)
    image_shape: tuple[int, int, int] | None
    # its class in torchvision.datasets, which downloads its files; None for files of your own,
    # which ae_lab cannot download
    torchvision_class: str | None = None
    # the folder under data.root that holds its files; default: torchvision's class name, as
    # torchvision names it (MNIST keeps raw/ in it), so it is not a second name to keep in step
    folder: str = ""
    # the official numbers of training and test images; None where the data decides (a folder)
    train_images: int | None = None
    test_images: int | None = None
    # MD5 sums of the files as they are read, by file name, where they are known. torchvision's
    # own sums of MNIST-like sets are those of the .gz archives; for a file without one here, the
    # archive beside it (torchvision's download keeps it) is checked against torchvision's sum
    # and must unpack to the file; a file with neither is checked against its own sizes.
    # (Left out of the hash: a definition keys the readers' caches.)
    md5: Mapping[str, str] = field(default_factory=dict, hash=False)
    # labels for figures and tables, class k first; empty: the reader's (torchvision's class
    # names, a folder's sub-folder names)
    classes: tuple[str, ...] = ()
    # labels run 0 .. n_classes - 1 (what data.exclude_classes is checked against before torch
    # loads); None where the data decides (a folder's sub-folders)
    n_classes: int | None = 10

    def __post_init__(self) -> None:
        if not self.folder:
            object.__setattr__(self, "folder", self.torchvision_class or "")
        if self.classes and len(self.classes) != self.n_classes:
            raise ValueError(
                f"{self.name}: {len(self.classes)} class names for n_classes={self.n_classes}"
            )
        if self.format not in format_names():
            raise ValueError(
                f"{self.name}: no format {self.format!r}; there are {', '.join(format_names())}"
            )


def dataset_names() -> list[str]:
    """The ``data.dataset`` values: one per module in ``ae_lab/data/datasets/``."""
    from ae_lab.data import datasets

    return sorted(m.name for m in pkgutil.iter_modules(datasets.__path__) if not m.ispkg)


def format_names() -> list[str]:
    """The ``format`` values: one reader module per format in ``ae_lab/data/formats/`` (listed,
    not imported: the readers import this module)."""
    folder = Path(__file__).parent / "formats"
    return sorted(m.name for m in pkgutil.iter_modules([str(folder)]) if not m.ispkg)


@functools.cache
def definition(name: str) -> DatasetDefinition:
    """The definition named ``name`` (``ae_lab/data/datasets/<name>.py``'s ``DATASET``)."""
    if name not in dataset_names():
        raise ValueError(f"no dataset {name!r}; there are {', '.join(dataset_names())}")
    return importlib.import_module(f"ae_lab.data.datasets.{name}").DATASET


def square(size: Any) -> tuple[int, int] | None:
    """``data.image_size`` as (height, width): one side for a square, or [height, width]; None
    for anything else (the key's own rule names the mistake)."""
    if isinstance(size, int) and not isinstance(size, bool):
        return (size, size) if size >= 1 else None
    if isinstance(size, Sequence) and not isinstance(size, str) and len(size) == 2:
        sides = tuple(size)
        if all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sides):
            return sides[0], sides[1]
    return None


def sized_shape(channels: Any, image_size: Any) -> list[int] | None:
    """``data.image_shape`` of data whose shape its config sets (a folder of images):
    [channels, height, width] from ``data.channels`` (1 or 3) and ``data.image_size``; None when
    either is out of range, which its own rule reports."""
    size = square(image_size)
    if channels not in (1, 3) or isinstance(channels, bool) or size is None:
        return None
    return [channels, *size]
