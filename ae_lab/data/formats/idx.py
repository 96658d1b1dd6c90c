"""MNIST's file format (IDX), as torchvision's MNIST, FashionMNIST and KMNIST keep it: four files
under ``<data.root>/<torchvision class>/raw/``, found or downloaded, and checked before they are
read, so a missing or damaged file ends a run with one message naming it."""

from __future__ import annotations

import functools
import gzip
import hashlib
import math
import struct
from pathlib import Path

import numpy as np
import torch

from ae_lab.data.definition import DatasetDefinition, definition
from ae_lab.data.fetch import damaged_error, ensure, torchvision_class
from ae_lab.data.formats import Source

# the files of MNIST's format (train=True, False), as torchvision's MNIST classes read them:
# (images, labels), unpacked from the .gz archives torchvision downloads
RAW_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def where(data: DatasetDefinition, source: Source) -> Path:
    return Path(source.root).expanduser().resolve() / data.folder / "raw"


def class_names(data: DatasetDefinition, source: Source) -> tuple[str, ...]:
    """The definition's labels, else torchvision's class names for the dataset, else the
    indices."""
    if data.classes:
        return data.classes
    if data.torchvision_class:
        return tuple(torchvision_class(data).classes)
    return tuple(str(k) for k in range(data.n_classes or 10))


def prepare(data: DatasetDefinition, source: Source) -> None:
    for train in (True, False):
        load(data, source, train)


def load(data: DatasetDefinition, source: Source, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(images as uint8 (N, 1, H, W), labels) of the training or the test files, downloaded by
    torchvision if missing and ``source.download`` is on (where the definition names its class),
    checked before they are read; a file truncated, altered or not matching its pair is named.
    Read as torchvision reads them: the data after the header, in the header's shape."""
    images, labels = raw_files(data, Path(source.root).expanduser(), train, source.download)
    x, y = (torch.from_numpy(_data(p)) for p in (images, labels))
    return x.unsqueeze(1), y.long()


def _data(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims).copy()


def raw_files(
    data: DatasetDefinition, root: Path, train: bool, download: bool
) -> tuple[Path, Path]:
    """The (images, labels) files, there and checked against each other."""
    raw = root / data.folder / "raw"

    def missing() -> bool:
        return not all((raw / name).is_file() for name in RAW_FILES[train])

    def get() -> None:
        torchvision_class(data)(str(root), train=train, download=True)

    ensure(
        data, root, f"{data.folder}/raw", missing, get if data.torchvision_class else None, download
    )
    images, labels = (raw / name for name in RAW_FILES[train])
    dataset = _name(data)
    n_images, n_labels = (
        check_raw_file(dataset, str(p), p.stat().st_size, p.stat().st_mtime_ns)[0]
        for p in (images, labels)
    )
    if n_images != n_labels:
        why = f"it holds {n_images:,} images and {labels.name} {n_labels:,} labels"
        raise damaged_error(data, images, why)
    return images, labels


def _name(data: DatasetDefinition) -> str:
    """The ``data.dataset`` value of a definition (the cache of ``check_raw_file`` is by name)."""
    from ae_lab.data.definition import dataset_names

    return next(n for n in dataset_names() if definition(n) == data)


@functools.cache
def check_raw_file(dataset: str, path: str, size: int, mtime_ns: int) -> tuple[int, ...]:
    """The sizes in an IDX file's header, after checking that the file is as long as they say,
    holds images of the dataset's shape (or one label per item) and, when it claims the official
    image count and the dataset's definition knows the official file's MD5 sum, has that sum.
    Where the sum is not known, a ``.gz`` archive beside the file (torchvision keeps the ones it
    downloads) must have torchvision's sum for it and unpack to the file. Cached by size and
    mtime, so a sweep in one process hashes each file once (about 0.1 s for MNIST's four; about
    0.4 s more to unpack a training-images archive and compare)."""
    data = definition(dataset)
    with open(path, "rb") as f:
        header = f.read(16)
    ndim = header[3] if len(header) >= 4 and header[:3] == b"\x00\x00\x08" else 0
    if not 1 <= ndim <= 3 or len(header) < 4 + 4 * ndim:
        raise damaged_error(data, path, "it does not start with an IDX header of uint8 data")
    dims = struct.unpack(f">{ndim}I", header[4 : 4 + 4 * ndim])
    expected = 4 + 4 * ndim + math.prod(dims)
    if size != expected:
        why = f"it has {size:,} bytes where its header promises {expected:,}"
        raise damaged_error(data, path, why)
    name = Path(path).name
    train = name in RAW_FILES[True]
    item = tuple(data.image_shape[1:]) if name == RAW_FILES[train][0] else ()
    if dims[1:] != item:
        shape = "x".join(map(str, dims[1:])) or "single labels"
        want = "x".join(map(str, item)) or "single labels"
        raise damaged_error(data, path, f"it holds items of {shape} where {data.name} has {want}")
    official = data.train_images if train else data.test_images
    if name in data.md5 and dims[0] == official:
        digest = hashlib.md5(Path(path).read_bytes()).hexdigest()
        if digest != data.md5[name]:
            why = f"its MD5 sum is {digest}, the official file's is {data.md5[name]}"
            raise damaged_error(data, path, why)
    elif Path(f"{path}.gz").is_file():
        _check_archive(data, Path(path), Path(f"{path}.gz"))
    return dims


def _check_archive(data: DatasetDefinition, path: Path, archive: Path) -> None:
    """The archive has torchvision's MD5 sum for it, and ``path`` is what it unpacks to."""
    resources = torchvision_class(data).resources if data.torchvision_class else []
    official = dict(resources).get(archive.name)
    packed = archive.read_bytes()
    digest = hashlib.md5(packed).hexdigest()
    if official is not None and digest != official:
        why = f"its MD5 sum is {digest}, the official archive's is {official}"
        raise damaged_error(data, archive, why)
    try:
        unpacked = gzip.decompress(packed)
    except (OSError, EOFError) as err:
        raise damaged_error(data, archive, f"it cannot be unpacked ({err})") from err
    if unpacked != path.read_bytes():
        raise damaged_error(data, path, f"it is not what {archive.name} beside it unpacks to")
