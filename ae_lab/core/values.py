"""Small checks of a value's kind, shared by the config checks and the domain code: a bool is not
an int here, and a number must be finite."""

from __future__ import annotations

import math
from typing import Any


def is_int(v: Any) -> bool:
    """An int that is not a bool."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    """A finite int or float that is not a bool."""
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)
