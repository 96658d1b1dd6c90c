"""The run's images for a model that learns from them beside the run (the downstream classifier),
and the key that tells them apart from any other data for a cache of what was learnt.

The copy reads the same files or folder, at the same shape and with the same split as the run,
without the run's corruption, binarized targets or excluded classes: a judge of every class of
the clean images. The key holds what changes those images and splits, so two folders, one folder
at two sizes, or one folder whose files changed never share a cached model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ae_lab.data.datamodule import ImageDataModule


def clean_copy(data: ImageDataModule, batch_size: int, seed: int) -> ImageDataModule:
    """A datamodule of ``data``'s images, split as ``data`` splits them, with clean inputs and
    targets, every class, and its own ``batch_size`` and ``seed``."""
    source = data.source
    return ImageDataModule(
        data.dataset,
        root=data.root,
        batch_size=batch_size,
        val_size=data.val_size,
        split_seed=data.split_seed,
        seed=seed,
        fast=data.fast,
        on_device=data.on_device,
        num_workers=data.num_workers,
        pin_memory=data.pin_memory,
        download=data.download,
        image_shape=data.image_shape,
        path=str(source.path) if source.path is not None else None,
        image_size=list(source.size) if source.size is not None else None,
        channels=source.channels,
        test_fraction=source.test_fraction,
    )


def data_key(data: ImageDataModule) -> dict[str, Any]:
    """What identifies ``data``'s images and splits: the dataset, the split (``val_size``,
    ``split_seed``) and where its files are (the resolved ``data.root`` of a named dataset); a
    folder's reader adds its resolved path, a fingerprint of its files and the shape they are
    read at (``image_folder.cache_key``); excluded classes, where there are any. A named
    dataset's key is the one ae_lab has always cached its classifier by."""
    key: dict[str, Any] = {
        "dataset": data.dataset,
        "val_size": data.val_size,
        "split_seed": data.split_seed,
    }
    own = getattr(data.reader, "cache_key", None)
    if own is not None:
        key.update(own(data.definition, data.source))
    else:
        key["root"] = str(Path(data.root).expanduser().resolve())
    if data.exclude_classes:
        key["exclude_classes"] = list(data.exclude_classes)
    return key
