"""A dataset's raw files: found or downloaded by torchvision, one job at a time, and checked before
they are read, so a missing or damaged file ends a run with one message naming it."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import gzip
import hashlib
import logging
import math
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import torch

from ae_lab.core.errors import AeLabError
from ae_lab.data.definition import DatasetDefinition, definition

log = logging.getLogger(__name__)

# the files of MNIST's format (train=True, False), as torchvision's MNIST classes read them:
# (images, labels), unpacked from the .gz archives torchvision downloads
RAW_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def torchvision_class(data: DatasetDefinition) -> type:
    import torchvision.datasets

    return getattr(torchvision.datasets, data.torchvision_class)


def load_raw(
    dataset: str, root: str | Path, train: bool, download: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """(images as uint8 (N, H, W), labels) of the training or the test files of ``dataset``
    under ``root`` (torchvision's layout: ``root/<folder>/raw``), downloaded by torchvision if
    missing and ``download`` is on.

    Raises one readable error naming the place it looked and the two ways to point at a copy,
    instead of torchvision's download traceback, which is all an offline user would otherwise see;
    and one naming the damaged file when a file is truncated, altered or does not match its pair.
    Parallel jobs download one at a time, so none reads a file another is still writing.
    """
    data = definition(dataset)
    root = Path(root).expanduser()
    raw = root / data.folder / "raw"
    lock = root / data.folder / ".download.lock"  # there while a download runs, here or elsewhere

    def missing() -> bool:
        return not all((raw / name).is_file() for name in RAW_FILES[train])

    if missing() and not download:
        raise _missing(data, root, "download is off (data.download=false)")
    if missing() or lock.exists():
        made = [p for p in (root / data.folder, root) if not p.exists()]  # removed if left empty
        try:
            with _download_lock(lock):  # a download in progress finishes before its files are read
                if missing():
                    log.info("%s not found under %s; downloading it", data.name, root)
                    _download(data, root, train)
        except BaseException as err:  # noqa: BLE001 - any download failure means the same to the user
            for folder in made:  # a Ctrl-C during the download too
                with contextlib.suppress(OSError):  # only when empty: another job may fill it
                    folder.rmdir()
            if not isinstance(err, Exception):
                raise
            lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [""]
            why = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"
            raise _missing(data, root, f"the download failed: {why}") from err
    images, labels = (raw / name for name in RAW_FILES[train])
    n_images, n_labels = (
        check_raw_file(dataset, str(p), p.stat().st_size, p.stat().st_mtime_ns)[0]
        for p in (images, labels)
    )
    if n_images != n_labels:
        why = f"it holds {n_images:,} images and {labels.name} {n_labels:,} labels"
        raise _damaged(data, str(images), why)
    tv = torchvision_class(data)(str(root), train=train, download=False)
    return tv.data, tv.targets


def _download(data: DatasetDefinition, root: Path, train: bool) -> None:
    """torchvision's download of the dataset into ``root``; one that fails takes back every file
    and folder it made (partial archives, files of a half-done download, an empty ``raw/``), so
    the next try, or a copy put there by hand, starts from what was there before."""
    folder = root / data.folder
    before = set(folder.rglob("*"))
    try:
        torchvision_class(data)(str(root), train=train, download=True)
    except BaseException:
        for path in sorted(set(folder.rglob("*")) - before, key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):  # deepest first: a folder's files, then the folder
                if path.is_dir() and not path.is_symlink():
                    path.rmdir()
                else:
                    path.unlink()
        raise


@contextlib.contextmanager
def _download_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on the file ``path``, removed when the block ends so that the data
    folder keeps no lock file. A job that waited on a file removed meanwhile (or whose folder a
    failed download removed) takes the lock again on the file now at ``path``. Opening needs no
    write access: a read-only copy holding a lock file an older version left is still read."""
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
        except FileNotFoundError:  # its folder was removed between the two calls
            continue
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(fd).st_ino:
            break
        os.close(fd)  # the lock of a file no longer at ``path``: the job before removed it
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # a read-only folder keeps it, harmlessly
            path.unlink()
        os.close(fd)  # closing releases the lock


def _missing(data: DatasetDefinition, root: Path, why: str) -> AeLabError:
    return AeLabError(
        f"{data.name} files not found in {root.resolve() / data.folder / 'raw'} and {why}. "
        f"Point ae_lab at a folder that holds {data.folder}/raw/ (torchvision's layout) with "
        "AE_LAB_DATA_DIR=/path/to/data or the override data.root=/path/to/data."
    )


def _damaged(data: DatasetDefinition, path: str, why: str) -> AeLabError:
    return AeLabError(
        f"{data.name} file {path} is damaged: {why}. Delete it to have it downloaded again, or "
        "point AE_LAB_DATA_DIR / data.root at a good copy."
    )


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
        raise _damaged(data, path, "it does not start with an IDX header of uint8 data")
    dims = struct.unpack(f">{ndim}I", header[4 : 4 + 4 * ndim])
    expected = 4 + 4 * ndim + math.prod(dims)
    if size != expected:
        raise _damaged(data, path, f"it has {size:,} bytes where its header promises {expected:,}")
    name = Path(path).name
    train = name in RAW_FILES[True]
    item = tuple(data.image_shape[1:]) if name == RAW_FILES[train][0] else ()
    if dims[1:] != item:
        shape = "x".join(map(str, dims[1:])) or "single labels"
        want = "x".join(map(str, item)) or "single labels"
        raise _damaged(data, path, f"it holds items of {shape} where {data.name} has {want}")
    official = data.train_images if train else data.test_images
    if name in data.md5 and dims[0] == official:
        digest = hashlib.md5(Path(path).read_bytes()).hexdigest()
        if digest != data.md5[name]:
            why = f"its MD5 sum is {digest}, the official file's is {data.md5[name]}"
            raise _damaged(data, path, why)
    elif Path(f"{path}.gz").is_file():
        _check_archive(data, Path(path), Path(f"{path}.gz"))
    return dims


def _check_archive(data: DatasetDefinition, path: Path, archive: Path) -> None:
    """The archive has torchvision's MD5 sum for it, and ``path`` is what it unpacks to."""
    official = dict(torchvision_class(data).resources).get(archive.name)
    packed = archive.read_bytes()
    digest = hashlib.md5(packed).hexdigest()
    if official is not None and digest != official:
        why = f"its MD5 sum is {digest}, the official archive's is {official}"
        raise _damaged(data, str(archive), why)
    try:
        unpacked = gzip.decompress(packed)
    except (OSError, EOFError) as err:
        raise _damaged(data, str(archive), f"it cannot be unpacked ({err})") from err
    if unpacked != path.read_bytes():
        raise _damaged(data, str(path), f"it is not what {archive.name} beside it unpacks to")
