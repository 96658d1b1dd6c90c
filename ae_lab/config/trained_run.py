"""A trained run's model and data, read back as data and never run.

``ae-lab-eval`` rebuilds the model a checkpoint holds from what its run was composed with: group
choices (``model=vae``) and settings (``latent=8``, ``model.beta=4``). They come from the
checkpoint itself (``describe``, saved under the ``ae_lab`` key by ``ae_lab.run.resume``) or, for a
checkpoint of an older ae_lab, from Hydra's record beside its ``checkpoints/`` folder
(``.hydra/overrides.yaml``). Both travel with files from strangers, so neither is replayed as
written: each entry is parsed by Hydra's own override parser into a plain value (a string, number,
boolean, null or a list of these) and kept only if

- its key is ae_lab's: a group of ae_lab's config search path with one of that group's options,
  or a setting that exists in ae_lab's config composed with those choices;
- it sets nothing Hydra or ``instantiate`` reads (``hydra.*``, ``_target_``, ``_args_``, ...) and
  holds no interpolation (``${...}``, which could reach a resolver);
- its value passes the setting's rule (``ae_lab.config.rules``), as on the command line.

Anything else ends the command with one line (exit status 2) before anything is composed for the
run, let alone instantiated. What the evaluation sets itself (``EVAL_SETUP``: callbacks, loggers,
trainer, threads, ...) is left out, and every key the user gives again replaces the run's. The
values that pass are written back as overrides that Hydra's parser reads as the same plain values
(``ae_lab.config.rebuild``, which checks the keys and values too), so no text from the file
reaches the command line as it was written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from ae_lab.config import options
from ae_lab.config.rule import INSTANTIATE_KEYS
from ae_lab.core.errors import ConfigError
from ae_lab.core.identity import DISPLAY_ONLY, under

# a training run's settings that say how it was carried out, not what it trained: the evaluation
# takes these from conf/eval.yaml and its own command line
EVAL_SETUP = (
    "hydra",
    "ckpt_path",
    "evaluated_checkpoint",
    "callbacks",
    "logger",
    "trainer",
    "accelerator",
    "threads",
    "compile",
    "matmul_precision",
    "hparams_search",
    "optimized_metric",
    *DISPLAY_ONLY,
)
_PLAIN = (str, int, float, bool, type(None))


@dataclass
class TrainedRun:
    """What a run was composed with: group choices, settings (dotted keys) and deleted keys."""

    choices: dict[str, str | None] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain containers, as a checkpoint read as weights only may hold them."""
        return {"choices": self.choices, "settings": self.settings, "deleted": self.deleted}


def refuse(source: str, entry: str, why: str) -> ConfigError:
    """The one line that refuses ``entry`` of the run read from ``source``."""
    return ConfigError(
        f"{source}: {entry} {why}; ae_lab takes only the model's and data's "
        "settings from it, as plain values"
    )


def _is_plain(value: Any) -> bool:
    if isinstance(value, list):
        return all(_is_plain(v) for v in value)
    return isinstance(value, _PLAIN)


def _has_interpolation(value: Any) -> bool:
    if isinstance(value, list):
        return any(_has_interpolation(v) for v in value)
    return isinstance(value, str) and "${" in value


def _parts(key: str) -> list[str]:
    return re.split(r"[./@]", key)


def _check_key(key: str, source: str, entry: str) -> None:
    """Refuses a key that Hydra or ``instantiate`` reads."""
    if key.split(".")[0].split("/")[0] == "hydra":
        raise refuse(source, entry, "sets Hydra's own config")
    if any(part in INSTANTIATE_KEYS for part in _parts(key)):
        raise refuse(source, entry, "sets what instantiate builds")


def _check_value(value: Any, source: str, entry: str) -> None:
    if isinstance(value, dict):
        raise refuse(source, entry, "is a mapping")
    if not _is_plain(value):
        raise refuse(source, entry, "is not a plain value")
    if _has_interpolation(value):
        raise refuse(source, entry, "holds an interpolation (${...})")


def from_overrides(overrides: Any, source: str) -> TrainedRun:
    """The run that Hydra's list of overrides ``overrides`` (``.hydra/overrides.yaml``)
    describes; raises ``ConfigError`` for an entry that is anything but a plain choice or
    setting. Which keys and values are ae_lab's is ``ae_lab.config.rebuild.check``'s to say."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise ConfigError(f"{source} is not a list of overrides")
    parser = OverridesParser.create()
    run = TrainedRun()
    for entry in overrides:
        try:
            override = parser.parse_override(entry)
        except Exception:  # noqa: BLE001 - Hydra's parser errors are many; the answer is one
            raise refuse(source, entry, "is not an override Hydra reads") from None
        key = override.key_or_group
        _check_key(key, source, entry)
        if override.package is not None:
            raise refuse(source, entry, "moves a config to another package (@)")
        if override.is_delete():
            run.deleted.append(key)
            continue
        if override.is_sweep_override():
            raise refuse(source, entry, "is a sweep, not one run's value")
        value = override.value()
        if under(key.replace("/", "."), EVAL_SETUP):
            _check_mapping(value, source, entry)  # left out, but never a config built in hiding
            continue
        _check_value(value, source, entry)
        if "/" in key or ("." not in key and key in options.groups()):
            run.choices[key] = value
        else:
            run.settings[key] = value
    return run


def _check_mapping(value: Any, source: str, entry: str) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _check_key(str(k), source, entry)
            _check_mapping(v, source, entry)
    elif isinstance(value, list):
        for v in value:
            _check_mapping(v, source, entry)


def from_checkpoint(entry: Any, source: str) -> TrainedRun:
    """The run a checkpoint's own record (``TrainedRun.to_dict``) describes; raises
    ``ConfigError`` for anything but plain choices and settings."""
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{source} is not a record of a run's choices and settings")
    choices, settings = entry.get("choices") or {}, entry.get("settings") or {}
    deleted = entry.get("deleted") or []
    if not (isinstance(choices, Mapping) and isinstance(settings, Mapping)):
        raise ConfigError(f"{source} is not a record of a run's choices and settings")
    if not (isinstance(deleted, list) and all(isinstance(k, str) for k in deleted)):
        raise ConfigError(f"{source}: its deleted keys are not a list of names")
    run = TrainedRun()
    for kind, found, into in (
        ("choice", choices, run.choices),
        ("setting", settings, run.settings),
    ):
        for key, value in found.items():
            entry_text = f"{kind} {key}={value!r}"
            if not isinstance(key, str) or not key:
                raise refuse(source, entry_text, "has no key name")
            _check_key(key, source, entry_text)
            if under(key.replace("/", "."), EVAL_SETUP):
                _check_mapping(value, source, entry_text)  # left out, but never built in hiding
                continue
            _check_value(value, source, entry_text)
            into[key] = value
    for key in deleted:
        _check_key(key, source, f"~{key}")
        run.deleted.append(key)
    return run


# ------------------------------------------------------------------ what a checkpoint carries
def _plain(value: Any) -> Any:
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=True)
    return value if _is_plain(value) else None


def describe(cfg: DictConfig) -> dict[str, Any] | None:
    """The choices and settings this Hydra job was composed with (the task's overrides, less
    ``EVAL_SETUP``), resolved to plain values, for a checkpoint to carry; None outside a Hydra
    job. A value that is not plain (a mapping) is left out."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not HydraConfig.initialized():
        return None
    hydra = HydraConfig.get()
    parser = OverridesParser.create()
    run = TrainedRun()
    for entry in hydra.overrides.task:
        try:
            override = parser.parse_override(entry)
        except Exception:  # noqa: BLE001 - composed already; not ours to judge here
            continue
        key = override.key_or_group
        if under(key.replace("/", "."), EVAL_SETUP) or override.package is not None:
            continue
        if override.is_delete():
            run.deleted.append(key)
        elif key in hydra.runtime.choices:
            run.choices[key] = hydra.runtime.choices[key]
        else:
            try:
                value = _plain(OmegaConf.select(cfg, key, throw_on_missing=True))
            except Exception:  # noqa: BLE001 - left out: the run itself says why
                continue
            if value is not None or OmegaConf.select(cfg, key) is None:
                run.settings[key] = value
    return run.to_dict()
