"""Small checks of a value's kind, shared by the config checks and the domain code: a bool is not
an int here, and a number must be finite; and a config value read without raising."""

from __future__ import annotations

import math
from typing import Any

from omegaconf import DictConfig, OmegaConf


def is_int(v: Any) -> bool:
    """An int that is not a bool."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    """A finite int or float that is not a bool."""
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def select_or_none(config: DictConfig, key: str) -> Any:
    """``key``'s value in ``config``; None when it is missing or does not resolve (the key's own
    check, where there is one, says what is wrong with it)."""
    try:
        return OmegaConf.select(config, key, default=None)
    except Exception:  # noqa: BLE001 - an unresolvable value is just not there
        return None
