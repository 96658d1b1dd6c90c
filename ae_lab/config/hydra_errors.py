"""Hydra's own errors about the command line, as ae_lab's one line with the closest valid names.

An unknown key (``optimzer.lr=1``) or group option (``model=convae``) is found by Hydra while it
composes the config, before any ae_lab code runs. Hydra prints it over several lines, with its
config search path, and for a mistyped key suggests adding it (``+trainer.max_epoch=3``), which
only moves the error to Lightning. The console entry point routes these errors through ``explain``
(``install``) so that they end like every other config error: ``ae_lab: <message>`` and exit
status 2. ``HYDRA_FULL_ERROR=1`` still shows Hydra's own report.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from hydra.errors import (
    ConfigCompositionException,
    HydraException,
    MissingConfigException,
    OverrideParseException,
)
from omegaconf import DictConfig
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

from ae_lab.core.errors import (
    ConfigError,
    closest,
    did_you_mean,
    exit_with,
    full_error_wanted,
    one_line,
)

_OVERRIDE = re.compile(r"Could not override '([^']+)'")
_APPEND = re.compile(r"use (\+\S+)")


def _unknown_key(err: ConfigCompositionException) -> str | None:
    """``<key> is not a setting (did you mean <closest>?)``, else the keys where it would be."""
    cause, override = err.__cause__, _OVERRIDE.search(str(err))
    unknown = isinstance(cause, (ConfigKeyError, ConfigAttributeError))
    if not (unknown and override and cause.full_key):
        return None
    parent = cause.parent_node
    keys = parent if isinstance(parent, DictConfig) else []
    names = sorted(str(k) for k in keys if k != "hydra" and not str(k).startswith("_"))
    key, missing = override.group(1), str(cause.full_key)
    where, _, name = missing.rpartition(".")
    close = closest(name, names)
    if close:  # the key as typed, its mistyped part replaced
        fixed = ".".join(filter(None, (where, close))) + key[len(missing) :]
        return f"{key} is not a setting (did you mean {fixed}?)"
    append = _APPEND.search(str(err))
    return f"{key} is not a setting; {where or 'the top level'} has {', '.join(names)}" + (
        f" ({append.group(1)} adds it as a new key)" if append else ""
    )


def explain(err: BaseException) -> str | None:
    """The one line for a Hydra error about the command line, None for any other error."""
    if isinstance(err, MissingConfigException) and err.options and err.missing_cfg_file:
        group, _, option = err.missing_cfg_file.rpartition("/")
        options = list(err.options)
        return f"{group} must be one of {', '.join(options)}, got {option!r}" + did_you_mean(
            option, options
        )
    if isinstance(err, ConfigCompositionException) and (message := _unknown_key(err)):
        return message
    if isinstance(err, OverrideParseException):
        return f"{err.override}: {one_line(ConfigError(str(err)))}"
    if isinstance(err, ConfigCompositionException):
        # Hydra's own words, less the config search path it appends
        return one_line(ConfigError(str(err).split("\nConfig search path:")[0]))
    return None


def install() -> None:
    """Routes the errors Hydra reports itself (``hydra._internal.utils.run_and_report``, which
    ``hydra.main`` calls around composing and running) through ``explain`` first."""
    from hydra._internal import utils

    report: Callable[[Any], Any] = utils.run_and_report
    if getattr(report, "explains", False):
        return

    def run_and_report(func: Callable[[], Any]) -> Any:
        def explained() -> Any:
            try:
                return func()
            except HydraException as err:
                message = explain(err)
                if message is None or full_error_wanted():
                    raise
                exit_with(message, ConfigError.exit_code)

        return report(explained)

    run_and_report.explains = True  # type: ignore[attr-defined]
    utils.run_and_report = run_and_report
