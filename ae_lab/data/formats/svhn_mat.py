"""SVHN's file format: one MATLAB .mat file per split (``train_32x32.mat``, ``test_32x32.mat``)
under ``<data.root>/SVHN/``, downloaded by torchvision's ``SVHN`` class and read with
``scipy.io.loadmat``, which decodes arrays and runs no code from the file. ``X`` holds the images
as (H, W, C, N), ``y`` the labels 1..10, where 10 stands for the digit 0 (as torchvision reads
them)."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np
import torch

from ae_lab.data.definition import DatasetDefinition
from ae_lab.data.fetch import damaged_error, ensure, torchvision_class
from ae_lab.data.formats import Source

SPLITS = {True: "train", False: "test"}


def file_name(train: bool) -> str:
    return f"{SPLITS[train]}_32x32.mat"


def where(data: DatasetDefinition, source: Source) -> Path:
    return Path(source.root).expanduser().resolve() / data.folder


def class_names(data: DatasetDefinition, source: Source) -> tuple[str, ...]:
    return data.classes or tuple(str(k) for k in range(data.n_classes or 10))


def prepare(data: DatasetDefinition, source: Source) -> None:
    for train in (True, False):
        load(data, source, train)


def load(data: DatasetDefinition, source: Source, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(images as uint8 (N, C, H, W), labels 0..9) of the training or the test file, downloaded
    by torchvision if missing and ``source.download`` is on, then checked: its arrays, their
    shapes and labels, and, for a file of the official image count, the official MD5 sum."""
    root = Path(source.root).expanduser()
    folder = root / data.folder
    path = folder / file_name(train)

    def get() -> None:  # torchvision checks the download's MD5 sum itself
        torchvision_class(data)(str(folder), split=SPLITS[train], download=True)

    ensure(data, root, data.folder, lambda: not path.is_file(), get, source.download)
    x, y = _read(data, str(path), train)
    return torch.from_numpy(x), torch.from_numpy(y)


def _read(data: DatasetDefinition, path: str, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """The file's images (N, C, H, W) and labels, checked."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(path)
    except Exception as err:  # noqa: BLE001 - scipy's many errors for a file it cannot read
        raise damaged_error(data, path, f"it cannot be read as a .mat file ({err})") from None
    x, y = mat.get("X"), mat.get("y")
    if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
        raise damaged_error(data, path, "it holds no X (images) and y (labels) arrays")
    channels, height, width = data.image_shape or (3, 32, 32)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (height, width, channels):
        shape = "x".join(map(str, x.shape))
        want = f"{height}x{width}x{channels}xN of uint8"
        raise damaged_error(
            data, path, f"its X is {shape} of {x.dtype}, where {data.name} has {want}"
        )
    labels = y.reshape(-1).astype(np.int64)
    if len(labels) != x.shape[3]:
        why = f"it holds {x.shape[3]:,} images and {len(labels):,} labels"
        raise damaged_error(data, path, why)
    if len(labels) and (labels.min() < 1 or labels.max() > 10):
        why = f"its labels run {labels.min()}..{labels.max()}, not 1..10"
        raise damaged_error(data, path, why)
    name = Path(path).name
    official = data.train_images if train else data.test_images
    if name in data.md5 and len(labels) == official:
        stat = Path(path).stat()
        digest = md5sum(path, stat.st_size, stat.st_mtime_ns)
        if digest != data.md5[name]:
            why = f"its MD5 sum is {digest}, the official file's is {data.md5[name]}"
            raise damaged_error(data, path, why)
    labels[labels == 10] = 0
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), labels


@functools.cache
def md5sum(path: str, size: int, mtime_ns: int) -> str:
    """The file's MD5 sum, cached by its size and mtime: a sweep in one process hashes each file
    once (about 0.3 s for the training file's 182 MB)."""
    return hashlib.md5(Path(path).read_bytes()).hexdigest()
