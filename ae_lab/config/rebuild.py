"""The overrides that rebuild a trained run's model and data for ``ae-lab-eval`` (``check``):
each group, option, deleted key and setting checked against ae_lab's config and its rules, and
written back so that Hydra's parser reads exactly the value that passed (``as_override``). The run
itself is read from its files, as data, by ``ae_lab.config.trained_run``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from omegaconf import DictConfig

from ae_lab.config import location, options
from ae_lab.config.trained_run import EVAL_SETUP, TrainedRun, refuse
from ae_lab.core.errors import ConfigError, did_you_mean
from ae_lab.core.identity import under

# a group option's name: folders and a file name, nothing that climbs out of the group
OPTION = re.compile(r"[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*")


def _compose(overrides: list[str]) -> DictConfig:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(location.config_dir()), version_base="1.3"):
        return compose("eval", overrides=overrides)


def _exists(cfg: DictConfig, key: str) -> bool:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return False
        node = node._get_node(part)
    return True


def check(run: TrainedRun, source: str, given: Iterable[str] = ()) -> list[str]:
    """The overrides that rebuild ``run``'s model and data, less the keys in ``given`` (and every
    key inside them), which the user sets again; raises ``ConfigError`` for a group or option,
    key or value that is not ae_lab's or breaks its rule."""
    from ae_lab.config.validation import rule_for

    given = tuple(given)
    found = options.options()
    choices: list[str] = []
    for group, option in run.choices.items():
        entry = f"{group}={option}"
        if group not in found:
            raise refuse(source, entry, f"names no group of ae_lab's{did_you_mean(group, found)}")
        if option is not None and not (
            isinstance(option, str) and OPTION.fullmatch(option) and option in found[group]
        ):
            raise ConfigError(
                f"{source}: {entry}: {group} has no option {option!r}; its options are "
                + ", ".join(found[group])
            )
        if not under(group.replace("/", "."), given):
            choices.append(as_override(group, option))
    cfg = _compose(choices)
    out = list(choices)
    for key in run.deleted:
        if under(key, EVAL_SETUP) or under(key, given):
            continue
        if not _exists(cfg, key):
            raise refuse(source, f"~{key}", "deletes a key ae_lab's config does not have")
        out.append(f"~{key}")
    for key, value in run.settings.items():
        if under(key, given):
            continue
        entry = f"{key}={value!r}"
        rule = rule_for(key)
        if rule is None or not _exists(cfg, key):
            raise refuse(source, entry, "is no setting of ae_lab's config")
        if not ((value is None and rule.nullable) or rule.ok(value)):
            raise ConfigError(f"{source}: {rule.complaint(key, value)}")
        out.append(as_override(key, value))
    return out


# ------------------------------------------------------------------ values back as overrides
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
