"""Every setting's allowed range, checked once at start-up before any work.

One table (``ae_lab.config.rules``) instead of checks spread over constructors: a value out of
range stops the run with a message that names the key, the value and what is allowed, rather than
failing deep inside Lightning or torch with a traceback (or, worse, running with a value that means
something else). Every key of the shipped configs has a rule (tests/test_validation.py fails on a
new key without one). A rule applies wherever its key exists in the composed config
(``model.weight`` is the sparse and the contractive autoencoder's penalty weight); ``*`` in a
rule's key stands for any one name.

A key that only repeats another (``model.latent_dim: ${latent}``) is checked where its value is
set, so one mistake is one line. What the value alone cannot decide, whether a key added with
``+trainer.`` is an argument of Lightning's Trainer, ``check_trainer`` asks Lightning, still before
any data is read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from fnmatch import fnmatchcase
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from ae_lab.config.rule import (
    INSTANTIATE_KEYS,
    OVERCOMPLETE_MODELS,
    Rule,
    is_int,
    is_number,
)
from ae_lab.config.rules import RULES
from ae_lab.core.errors import AeLabError, ConfigError, did_you_mean
from ae_lab.data.definition import dataset_names, definition

# ``${latent}``: a reference to another key, no resolver
_REFERENCE = re.compile(r"\$\{[\w.\-]+\}")


def _matches(pattern: str, key: str) -> bool:
    names, want = key.split("."), pattern.split(".")
    return len(names) == len(want) and all(map(fnmatchcase, names, want))


def rule_for(key: str) -> Rule | None:
    return next((rule for rule in RULES if _matches(rule.key, key)), None)


def settings(cfg: DictConfig) -> Iterator[tuple[str, Any, Rule | None]]:
    """Every key a user can set in ``cfg`` (Hydra's own node aside), with its value as written
    (``${latent}`` unresolved) and its rule, or None when it has none."""

    def walk(node: dict, prefix: str) -> Iterator[tuple[str, Any, Rule | None]]:
        for name, value in node.items():
            key = f"{prefix}{name}"
            if key == "hydra":
                continue
            rule = rule_for(key)
            if isinstance(value, dict) and not (rule and rule.whole):
                yield from walk(value, f"{key}.")
            else:
                yield key, value, rule

    yield from walk(OmegaConf.to_container(cfg, resolve=False), "")


def _resolved(cfg: DictConfig, key: str) -> Any:
    value = OmegaConf.select(cfg, key, throw_on_missing=True)
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _select(cfg: DictConfig, key: str) -> Any:
    try:
        return OmegaConf.select(cfg, key, default=None)
    except Exception:  # noqa: BLE001 - reported by the key's own rule
        return None


def _bottleneck_fits(cfg: DictConfig) -> str | None:
    """A code wider than the image can copy it, so only a model with a penalty that stops that
    may have one (the PCA beside it cannot have more components than pixels either)."""
    latent = _select(cfg, "model.latent_dim")
    shape = _select(cfg, "model.image_shape")
    if not (isinstance(shape, (list, ListConfig)) and len(shape) == 3 and all(map(is_int, shape))):
        return None  # no image size to compare with, or the key's own rule says what is wrong
    pixels = shape[1] * shape[2]
    objective = _select(cfg, "model.objective._target_") or _select(cfg, "model._target_")
    model = str(objective).rsplit(".")[-1]
    if not is_int(latent) or latent <= pixels or model in OVERCOMPLETE_MODELS:
        return None
    key = "latent" if _select(cfg, "latent") == latent else "model.latent_dim"
    return (
        f"{key} must be at most {pixels} (the pixels of an image) for {_model_name(cfg)}, got "
        f"{latent}; "
        + " or ".join(f"model={m}" for m in OVERCOMPLETE_MODELS.values())
        + " may be overcomplete"
    )


def _model_name(cfg: DictConfig) -> str:
    """``model=<option>`` as the run chose it, else the class ``model`` builds."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized() and (option := HydraConfig.get().runtime.choices.get("model")):
        return f"model={option}"
    return str(_select(cfg, "model._target_")).rsplit(".")[-1]


def _nesterov_has_momentum(cfg: DictConfig) -> str | None:
    nesterov = _select(cfg, "optimizer.nesterov")
    momentum = _select(cfg, "optimizer.momentum")
    if nesterov is True and is_number(momentum) and momentum <= 0:
        return f"optimizer.nesterov=true needs optimizer.momentum > 0 (torch's SGD), got {momentum}"
    return None


def _dataset_fits(cfg: DictConfig) -> str | None:
    """The validation images come from the chosen dataset's training images (the models are
    built for its image shape, ``model.image_shape: ${data.image_shape}``)."""
    name, val_size = _select(cfg, "data.dataset"), _select(cfg, "data.val_size")
    if name not in dataset_names():
        return None
    data = definition(name)
    n = data.train_images
    if is_int(val_size) and val_size >= n:
        return (
            f"data.val_size must be an integer in [1, {n}) (validation images taken from "
            f"{data.name}'s {n:,} training images), got {val_size}"
        )
    return None


def _classes_left(cfg: DictConfig) -> str | None:
    """The classes left out of training are the chosen dataset's, and some remain to train on."""
    name, excluded = _select(cfg, "data.dataset"), _select(cfg, "data.exclude_classes")
    if name not in dataset_names() or not isinstance(excluded, ListConfig):
        return None
    data = definition(name)
    n = data.n_classes
    if not all(is_int(k) and k >= 0 for k in excluded):
        return None  # the key's own rule says so
    if any(k >= n for k in excluded) or len(set(excluded)) >= n:
        return (
            f"data.exclude_classes must be class indices in [0, {n - 1}] ({data.name}'s "
            f"classes), not all of them, got {list(excluded)}"
        )
    return None


def _batch_shares_fit(cfg: DictConfig) -> str | None:
    """A ``trainer.limit_*_batches`` share of an epoch must come to one batch at least, which
    Lightning finds only once training has started. Counted on the dataset's official files
    (classes left out, smaller files or several processes give fewer batches: Lightning's own
    refusal then, worded by ``ae_lab.run.resume``)."""
    name = _select(cfg, "data.dataset")
    val_size, batch = _select(cfg, "data.val_size"), _select(cfg, "data.batch_size")
    eval_batch = _select(cfg, "data.eval_batch_size") or batch
    if name not in dataset_names() or not all(map(is_int, (val_size, batch, eval_batch))):
        return None
    data = definition(name)
    images = {"train": data.train_images - val_size, "val": val_size, "test": data.test_images}
    for split, n_images in images.items():
        share = _select(cfg, f"trainer.limit_{split}_batches")
        size = batch if split == "train" else eval_batch
        n = -(-n_images // size) if n_images > 0 and size > 0 else 0
        if isinstance(share, float) and 0 < share < 1 and n and int(n * share) == 0:
            return (
                f"trainer.limit_{split}_batches={share} of the {n} {split} batches is less than "
                f"one batch; give at least {1 / n:.4g}, or a number of batches (an integer >= 1)"
            )
    return None


# settings that are wrong only together
CROSS_CHECKS = (
    _bottleneck_fits,
    _nesterov_has_momentum,
    _dataset_fits,
    _classes_left,
    _batch_shares_fit,
)


def problems(cfg: DictConfig) -> list[str]:
    """One line per setting out of range: ``<key> must be <allowed>, got <value>``."""
    found, unresolved = [], set()
    for key, raw, rule in settings(cfg):
        if rule is None:
            continue
        try:
            value = _resolved(cfg, key)
        except Exception as err:  # noqa: BLE001 - an unresolvable value is reported like a bad one
            reason = str(err).splitlines()[0]
            if reason not in unresolved:  # once, where it is written, not where it is used
                found.append(f"{key}={raw} cannot be resolved: {reason}")
            unresolved.add(reason)
            continue
        if isinstance(raw, str) and _REFERENCE.fullmatch(raw):
            continue  # checked where it is set
        if not ((value is None and rule.nullable) or rule.ok(value)):
            found.append(rule.complaint(key, value))
    return found + [p for check in CROSS_CHECKS if (p := check(cfg))]


def _refuse(found: list[str]) -> None:
    if found:
        raise ConfigError("\n".join(found))


def check_config(cfg: DictConfig) -> None:
    """Raises ``ConfigError`` listing every setting out of range."""
    _refuse(problems(cfg))


def trainer_problems(cfg: DictConfig) -> list[str]:
    """The ``trainer`` keys that are not arguments of ``lightning.Trainer`` (one added with
    ``+trainer.``, which Hydra suggests for a typo), and a strategy name Lightning does not know."""
    import inspect

    import lightning as L
    from lightning.pytorch.strategies import StrategyRegistry

    arguments = [p for p in inspect.signature(L.Trainer.__init__).parameters if p != "self"]
    given = [k for k in OmegaConf.select(cfg, "trainer", default={}) if k not in INSTANTIATE_KEYS]
    found = [
        f"trainer.{k}: lightning.Trainer has no argument {k}{did_you_mean(k, arguments)}"
        for k in given
        if k not in arguments
    ]
    strategy = OmegaConf.select(cfg, "trainer.strategy", default="auto")
    strategies = ["auto", *StrategyRegistry.available_strategies()]
    if isinstance(strategy, str) and strategy not in strategies:
        found.append(
            f"trainer.strategy must be one of {', '.join(strategies)}, got {strategy!r}"
            + did_you_mean(strategy, strategies)
        )
    return found


def check_trainer(cfg: DictConfig) -> None:
    """Raises ``ConfigError`` listing every ``trainer`` key Lightning's Trainer would refuse, and
    every key another object built from the config would (``argument_problems``)."""
    _refuse(trainer_problems(cfg) + argument_problems(cfg))


def _parts(key: str, node: DictConfig) -> Iterator[tuple[str, DictConfig]]:
    """``node`` and the nodes inside it that ``instantiate`` builds too (a composed model's
    encoder, decoder and objective), by key."""
    yield key, node
    for name, child in node.items():
        if isinstance(child, DictConfig) and "_target_" in child:
            yield from _parts(f"{key}.{name}", child)


def _built_nodes(cfg: DictConfig) -> Iterator[tuple[str, DictConfig]]:
    """The config's nodes that ``instantiate`` builds (``_target_``), by key: a group's own node
    (``model``, ``data``) and its parts, or one entry of ``callbacks`` and ``logger``; the
    trainer's is ``trainer_problems``'."""
    for key, node in cfg.items():
        if key in ("hydra", "trainer") or not isinstance(node, DictConfig):
            continue
        if "_target_" in node:
            yield from _parts(str(key), node)
        elif key in ("callbacks", "logger"):
            for name, entry in node.items():
                if isinstance(entry, DictConfig) and "_target_" in entry:
                    yield f"{key}.{name}", entry


def argument_problems(cfg: DictConfig) -> list[str]:
    """Keys that the object their node builds takes no argument for (``+model.foo=1``), which
    ``instantiate`` would refuse with a traceback only once the run has started."""
    import inspect

    from hydra.utils import get_object

    found = []

    def arguments(node: DictConfig) -> list[Any] | None:
        try:
            return list(inspect.signature(get_object(str(node._target_))).parameters.values())
        except Exception:  # noqa: BLE001 - a target that does not load is instantiate's to report
            return None

    for key, node in _built_nodes(cfg):
        parameters = arguments(node)
        if parameters is None:
            continue
        accepted = [p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if any(p.kind == p.VAR_KEYWORD for p in parameters):
            # a composed model's own keys are settings its parts read: an argument of one of them
            children = (node._get_node(k) for k in node)
            parts = [
                arguments(c) for c in children if isinstance(c, DictConfig) and "_target_" in c
            ]
            if not parts or any(p is None for p in parts):
                continue
            named = [
                p.name
                for ps in parts
                for p in ps or ()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in accepted
            ]
            accepted += list(dict.fromkeys(named))
        target = get_object(str(node._target_))
        name = getattr(target, "__name__", str(node._target_))
        for arg in node:
            if str(arg) not in INSTANTIATE_KEYS and arg not in accepted:
                found.append(
                    f"{key}.{arg} is not an argument of {name}{did_you_mean(arg, accepted)}; "
                    f"{key} takes {', '.join(accepted)}"
                )
    return found


def check_environment(cfg: DictConfig) -> None:
    """What the machine must offer for this config: the package of each logger it names, a GPU
    when ``accelerator=gpu`` asks for one."""
    import torch

    from ae_lab.callbacks.loggers import missing_packages

    loggers = OmegaConf.select(cfg, "logger", default=None) or {}
    targets = {k: c.get("_target_") for k, c in loggers.items() if isinstance(c, DictConfig)}
    if missing := missing_packages({k: t for k, t in targets.items() if t}):
        raise AeLabError("\n".join(missing))
    accelerator = OmegaConf.select(cfg, "trainer.accelerator")
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise AeLabError(
            f"accelerator={accelerator} but torch finds no GPU on this machine "
            "(torch.cuda.is_available() is False). Use accelerator=auto (the GPU when there is "
            "one, else the CPU) or accelerator=cpu."
        )
