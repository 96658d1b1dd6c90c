"""A named dataset's files, read by the reader of its format (``ae_lab/data/formats/``): one
entry point for code and tests that want a set's images without a datamodule, and the names
that older code imports from here (MNIST's file names and checks, torchvision's class)."""

from __future__ import annotations

from pathlib import Path

import torch

from ae_lab.data.definition import definition
from ae_lab.data.fetch import _download_lock, torchvision_class
from ae_lab.data.formats import Source, reader
from ae_lab.data.formats.idx import RAW_FILES, check_raw_file

__all__ = ["RAW_FILES", "_download_lock", "check_raw_file", "load_raw", "torchvision_class"]


def load_raw(
    dataset: str, root: str | Path, train: bool, download: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """(images as uint8 (N, C, H, W), labels) of the training or the test files of ``dataset``
    under ``root`` (torchvision's layout), downloaded by torchvision if missing and ``download``
    is on, checked before they are read: a missing or damaged file ends in one message naming
    it."""
    data = definition(dataset)
    return reader(data.format).load(data, Source(Path(root), download), train)
