"""Where the data is when the command line does not say: ``data.root``'s default.

In order: ``$AE_LAB_DATA_DIR``; else the folder that ``make setup`` recorded in the venv it built
(``<venv>/ae_lab-data-dir``: ``$AE_LAB_DATA_DIR`` as make saw it, or ``../shared/data`` beside the
checkout when it holds MNIST), so that ``.venv/bin/python -m ae_lab`` finds the data without an
export; else ``data`` in the folder the run starts from, where torchvision downloads it. Imports
nothing heavy: the config is composed before torch loads.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENV = "AE_LAB_DATA_DIR"
# written by `make setup` into the venv's folder (sys.prefix), one absolute path on one line
RECORD = "ae_lab-data-dir"
FALLBACK = "data"


def recorded_root(prefix: str | Path | None = None) -> str | None:
    """The folder recorded in the venv at ``prefix`` (default: this Python's), when it is one."""
    record = Path(sys.prefix if prefix is None else prefix) / RECORD
    try:
        folder = record.read_text().strip()
    except OSError:
        return None
    # a folder moved or deleted since setup: the fallback, which says where it looked
    return folder if folder and Path(folder).is_dir() else None


def default_root() -> str:
    """``$AE_LAB_DATA_DIR``, else the folder ``make setup`` recorded, else ``data``."""
    return os.environ.get(ENV) or recorded_root() or FALLBACK
