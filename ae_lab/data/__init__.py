"""The data layer: one datamodule for every dataset, a small definition per dataset, input
corruptions. Names are imported when first used, so the dataset definitions (which the config
checks read before torch loads) import without torch."""

from __future__ import annotations

import importlib
from typing import Any

# public name -> the module that defines it
_EXPORTS = {
    "Binarize": "transforms",
    "Corruption": "transforms",
    "GaussianNoise": "transforms",
    "NoCorruption": "transforms",
    "PixelMask": "transforms",
    "TensorBatchLoader": "loader",
    "ImageDataModule": "datamodule",
    "MNISTDataModule": "datamodule",
    "ImageData": "contract",
    "DatasetDefinition": "definition",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
