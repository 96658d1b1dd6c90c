"""The data config's cross-checks that concern where the images come from, run with the others
(``ae_lab.config.validation.CROSS_CHECKS``) before any data is read."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from ae_lab.core.values import select_or_none
from ae_lab.data.definition import dataset_names, definition


def data_source_given(cfg: DictConfig) -> str | None:
    """A named dataset's ``data.image_shape`` is its definition's; a folder of images
    (``data=folder``) names an existing folder in ``data.path``."""
    name = select_or_none(cfg, "data.dataset")
    if name not in dataset_names():
        return None
    data, shape = definition(name), select_or_none(cfg, "data.image_shape")
    if data.image_shape is not None:
        if shape is not None and tuple(shape) != tuple(data.image_shape):
            return (
                f"data.image_shape must be {list(data.image_shape)} ({data.name}'s images; leave "
                f"it to the dataset), got {list(shape)}"
            )
        return None
    path = select_or_none(cfg, "data.path")
    if not isinstance(path, str):
        return (
            f"data.path must be the folder of your images for data.dataset={name} "
            f"(data.path=~/pictures), got {'null' if path is None else repr(path)}"
        )
    if not Path(path).expanduser().is_dir():
        return (
            f"data.path={path}: no such folder; point data.path at a folder of images (one "
            "sub-folder per class, or none for one class)"
        )
    return None
