"""A folder of the user's own images (``data=folder``, ``data.path=``): files of any size and
kind PIL decodes (PNG, JPEG, ...), each brought to ``data.channels`` (1: grey, 3: colour) and
resized to ``data.image_size``. With sub-folders, each is a class (sorted by name, as
torchvision's ``ImageFolder`` orders them; files directly in the folder are then left out, as
there); without, every image is of one class. A share ``data.test_fraction`` of the images, drawn
with ``data.split_seed``, is the test set.

Images are decoded by PIL, which runs no code from a file. A file it cannot decode (damaged, or
no image at all) is skipped, and one log line counts them; a folder without a single readable
image ends the run with one line naming ``data.path``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from pathlib import Path

import numpy as np
import torch

from ae_lab.core.errors import AeLabError, ConfigError
from ae_lab.data.definition import DatasetDefinition
from ae_lab.data.formats import Source

log = logging.getLogger(__name__)
USE = "point data.path at a folder of images (one sub-folder per class, or none for one class)"


def where(data: DatasetDefinition, source: Source) -> Path:
    return _folder(source)


def class_names(data: DatasetDefinition, source: Source) -> tuple[str, ...]:
    """The sub-folders' names, sorted; the folder's own name when it has none."""
    folder = _folder(source)
    return _classes(folder) or (folder.name,)


def prepare(data: DatasetDefinition, source: Source) -> None:
    load(data, source, train=True)


def load(data: DatasetDefinition, source: Source, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The training or the test images (uint8 (N, C, H, W)) and their class indices."""
    folder = _folder(source)
    if source.size is None or source.channels is None:
        raise ConfigError("data.image_size and data.channels must be set for a folder of images")
    files = tuple((str(f), k, *_stamp(f)) for f, k in _files(folder))
    x, y = _decoded(str(folder), files, source.size, source.channels)
    n, fraction = len(x), source.test_fraction or 0.0
    n_test = max(1, round(n * fraction))
    if n_test >= n:
        raise AeLabError(
            f"data.test_fraction={fraction} of the {n} readable images in data.path={folder} "
            "leaves none to train on; give a folder with more images or a smaller fraction"
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(source.split_seed))
    keep = order[n_test:] if train else order[:n_test]
    keep = keep.sort().values
    return torch.from_numpy(x)[keep], torch.from_numpy(y)[keep]


def cache_key(data: DatasetDefinition, source: Source) -> dict[str, object]:
    """What identifies the images read from the folder, for a cache of what is learnt from them:
    its resolved path, a fingerprint of its files (each one's path in it, class, size and
    modification time, hashed; no file is read), the (height, width) and channels they are read
    at and the test share."""
    folder = _folder(source).resolve()
    files = hashlib.sha1()
    for path, label in _files(folder):
        size, mtime = _stamp(path)
        files.update(f"{path.relative_to(folder)}\0{label}\0{size}\0{mtime}\n".encode())
    return {
        "path": str(folder),
        "files": files.hexdigest(),
        "size": list(source.size or ()),
        "channels": source.channels,
        "test_fraction": source.test_fraction,
    }


def _folder(source: Source) -> Path:
    if source.path is None:
        raise ConfigError(f"data.path is not set: {USE}, e.g. data.path=~/pictures")
    folder = Path(source.path).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"data.path={source.path}: no such folder; {USE}")
    return folder


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _classes(folder: Path) -> tuple[str, ...]:
    return tuple(sorted(d.name for d in folder.iterdir() if d.is_dir() and _visible(d)))


def _files(folder: Path) -> list[tuple[Path, int]]:
    """Every (file, class index), class by class, each class's files sorted by path."""
    classes = _classes(folder)
    if not classes:
        return [(f, 0) for f in sorted(folder.iterdir()) if f.is_file() and _visible(f)]
    found = []
    for k, name in enumerate(classes):
        for f in sorted((folder / name).rglob("*")):
            hidden = any(p.startswith(".") for p in f.relative_to(folder).parts)
            if f.is_file() and not hidden:
                found.append((f, k))
    return found


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


@functools.lru_cache(maxsize=1)
def _decoded(
    folder: str, files: tuple[tuple[str, int, int, int], ...], size: tuple[int, int], channels: int
) -> tuple[np.ndarray, np.ndarray]:
    """Every readable image of ``files`` (path, class, size, mtime) in ``folder``, decoded and
    resized, with its class; cached by the files' sizes and times, so the training and test
    sets, and the runs of a sweep in one process, decode the folder once."""
    images, labels, skipped = [], [], []
    for path, label, *_ in files:
        image = decode(Path(path), size, channels)
        if image is None:
            skipped.append(path)
        else:
            images.append(image)
            labels.append(label)
    if not images:
        why = f"no image PIL can read (none of its {len(files)} files)" if files else "no files"
        raise AeLabError(f"data.path={folder} holds {why}; {USE}")
    if skipped:
        log.warning(
            "skipped %d of %d files under %s that are not readable images (damaged, or of "
            "another kind), e.g. %s",
            len(skipped),
            len(files),
            folder,
            skipped[0],
        )
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def decode(path: Path, size: tuple[int, int], channels: int) -> np.ndarray | None:
    """One image as uint8 (channels, height, width), resized (bilinear, no crop) to ``size``;
    None when PIL cannot decode the file."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened).convert("L" if channels == 1 else "RGB")
            image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except Exception:  # noqa: BLE001 - PIL's many errors for a file that is no readable image
        return None
    return array[None] if channels == 1 else np.ascontiguousarray(array.transpose(2, 0, 1))
