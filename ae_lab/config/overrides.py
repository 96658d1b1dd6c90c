"""A plain value written back as an override that Hydra's parser reads as the same value.

What a trained run's files hold (``ae_lab.config.trained_run``) reaches the evaluation's command
line only this way: the override is parsed back and compared with the value, so no text from the
file is passed on as it was written.
"""

from __future__ import annotations

import re
from typing import Any

from ae_lab.core.errors import ConfigError


def _literal(value: Any, quote: bool = False) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ",".join(_literal(v, quote) for v in value) + "]"
    text = str(value)
    if not quote:
        return text
    # Hydra's quoted strings: a backslash before a quote, and the quote itself, are escaped
    escaped = re.sub(r"(\\*)'", lambda m: m[1] * 2 + "\\'", text)
    escaped = re.sub(r"(\\+)$", lambda m: m[1] * 2, escaped)
    return f"'{escaped}'"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(_same, a, b))
    return type(a) is type(b) and a == b


def as_override(key: str, value: Any, prefix: str = "") -> str:
    """``key=<value>`` written so that Hydra's parser reads back exactly ``value`` (checked by
    parsing it: strings are quoted where they must be); raises ``ConfigError`` for a value it
    cannot write so."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for quote in (False, True):
        text = f"{prefix}{key}={_literal(value, quote)}"
        try:
            parsed = parser.parse_override(text)
        except Exception:  # noqa: BLE001 - not read back: try quoting
            continue
        if not parsed.is_sweep_override() and _same(parsed.value(), value):
            return text
    raise ConfigError(f"{key}={value!r} cannot be passed to Hydra as it is")
