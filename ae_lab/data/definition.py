"""What makes one dataset differ from another: a small definition per dataset, read without torch.

The datamodule (``ae_lab.data.datamodule``) is the same for every dataset; a definition in
``ae_lab/data/datasets/<name>.py`` says where torchvision keeps its files, how many images it
has, their shape and their classes. ``data.dataset=<name>`` picks one. The config checks read the
definitions before torch loads, so this module and the definitions import nothing heavy.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass, field

from ae_lab.data.sizes import IMAGE_SHAPE


@dataclass(frozen=True)
class DatasetDefinition:
    """A 28x28 grey dataset in MNIST's file format that torchvision reads and downloads."""

    # as logs and messages name it, e.g. "Fashion-MNIST"
    name: str
    # its class in torchvision.datasets, which reads and downloads its files; torchvision keeps
    # them in <data.root>/<that class's name>/raw
    torchvision_class: str
    train_images: int
    test_images: int
    image_shape: tuple[int, int, int] = IMAGE_SHAPE
    # MD5 sums of the unpacked raw files, by file name, where they are known. torchvision's own
    # sums are those of the .gz archives; for a file without one here, the archive beside it
    # (torchvision's download keeps it) is checked against torchvision's sum and must unpack to
    # the file; a file with neither is checked against its own header (sizes, shape, counts).
    md5: Mapping[str, str] = field(default_factory=dict)
    # labels for figures and tables, class k first; empty: torchvision's class names
    classes: tuple[str, ...] = ()
    # labels run 0 .. n_classes - 1 (what data.exclude_classes is checked against before torch
    # loads, when torchvision's class names are not yet at hand)
    n_classes: int = 10

    def __post_init__(self) -> None:
        if self.classes and len(self.classes) != self.n_classes:
            raise ValueError(
                f"{self.name}: {len(self.classes)} class names for n_classes={self.n_classes}"
            )

    @property
    def folder(self) -> str:
        """The folder under ``data.root`` that holds ``raw/``: torchvision names it after its
        class, so it is a fact of torchvision's, not a second name to keep in step."""
        return self.torchvision_class


def dataset_names() -> list[str]:
    """The ``data.dataset`` values: one per module in ``ae_lab/data/datasets/``."""
    from ae_lab.data import datasets

    return sorted(m.name for m in pkgutil.iter_modules(datasets.__path__) if not m.ispkg)


@functools.cache
def definition(name: str) -> DatasetDefinition:
    """The definition named ``name`` (``ae_lab/data/datasets/<name>.py``'s ``DATASET``)."""
    if name not in dataset_names():
        raise ValueError(f"no dataset {name!r}; there are {', '.join(dataset_names())}")
    return importlib.import_module(f"ae_lab.data.datasets.{name}").DATASET
