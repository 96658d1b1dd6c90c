"""Every setting's allowed range, checked once at start-up before any work.

A value out of range stops the run with a message that names the key, the value and what is
allowed, rather than failing deep inside Lightning or torch with a traceback (or, worse, running
with a value that means something else). What a key allows is said once: in the annotation of the
argument it sets (``ae_lab.config.schema``: ``batch_size: Annotated[int, Ge(1)]``), or, where no
signature can say it (a top-level key, an argument of torch's or Lightning's that needs more than
its annotation), in a hand rule (``ae_lab.config.rules``; ``*`` in its key stands for any one
name). Every key of the shipped configs has one or the other (tests/test_validation.py), and no
hand rule repeats an annotation (tests/test_schema.py).

A key that only repeats another (``model.latent_dim: ${latent}``) is checked where its value is
set, so one mistake is one line. Settings wrong only together are ``CROSS_CHECKS``; a key that is
no argument of what its node builds is ``ae_lab.config.arguments``', still before any data is
read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from fnmatch import fnmatchcase
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from ae_lab.config.arguments import (  # noqa: F401 - the entrypoints' checks, in one place
    argument_problems,
    check_trainer,
    trainer_problems,
)
from ae_lab.config.data_checks import data_source_given
from ae_lab.config.rule import (
    OVERCOMPLETE_MODELS,
    Rule,
    is_int,
    is_number,
)
from ae_lab.config.rules import RULES
from ae_lab.config.schema import NO_SUCH, argument_at
from ae_lab.core.errors import AeLabError, ConfigError
from ae_lab.core.values import select_or_none
from ae_lab.data.definition import dataset_names, definition

# ``${latent}``: a reference to another key, no resolver
_REFERENCE = re.compile(r"\$\{[\w.\-]+\}")


def _matches(pattern: str, key: str) -> bool:
    names, want = key.split("."), pattern.split(".")
    return len(names) == len(want) and all(map(fnmatchcase, names, want))


def rule_for(key: str) -> Rule | None:
    """The hand rule of ``key``, if it has one."""
    return next((rule for rule in RULES if _matches(rule.key, key)), None)


def rule_at(container: Mapping, key: str) -> Rule | None:
    """``key``'s rule in a config (as a plain container): its hand rule, which says more than a
    signature can (tests/test_schema.py fails on one that says no more), else the one the
    annotation of the argument it sets states."""
    argument = argument_at(container, key)
    found = argument.domain if argument else None
    return rule_for(key) or (found.rule(key) if found else None)


def rule_in(cfg: DictConfig, key: str) -> Rule | None:
    return rule_at(OmegaConf.to_container(cfg, resolve=False), key)


def how_to_rule(cfg: DictConfig, key: str) -> str:
    """Where the allowed values of a key without a rule are to be stated."""
    argument = argument_at(OmegaConf.to_container(cfg, resolve=False), key)
    if argument is None or not argument.ours:
        return f"{key}: add a rule to ae_lab/config/rules.py"
    if argument.domain is None and argument.annotation is not NO_SUCH:
        return (
            f"{key}: annotate the argument {argument.name} of {argument.qualname} in "
            f"{argument.where} (typing.Annotated with annotated_types, docs/extending.md)"
        )
    return f"{key}: {argument.qualname} ({argument.where}) takes no argument {argument.name}"


def settings(cfg: DictConfig) -> Iterator[tuple[str, Any, Rule | None]]:
    """Every key a user can set in ``cfg`` (Hydra's own node aside), with its value as written
    (``${latent}`` unresolved) and its rule, or None when it has none."""
    container = OmegaConf.to_container(cfg, resolve=False)

    def walk(node: dict, prefix: str) -> Iterator[tuple[str, Any, Rule | None]]:
        for name, value in node.items():
            key = f"{prefix}{name}"
            if key == "hydra":
                continue
            rule = rule_at(container, key)
            if isinstance(value, dict) and not (rule and rule.whole):
                yield from walk(value, f"{key}.")
            else:
                yield key, value, rule

    yield from walk(container, "")


def _resolved(cfg: DictConfig, key: str) -> Any:
    value = OmegaConf.select(cfg, key, throw_on_missing=True)
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _bottleneck_fits(cfg: DictConfig) -> str | None:
    """A code wider than the image can copy it, so only a model with a penalty that stops that
    may have one (the PCA beside it cannot have more components than pixels either)."""
    latent = select_or_none(cfg, "model.latent_dim")
    shape = select_or_none(cfg, "model.image_shape")
    if not (isinstance(shape, (list, ListConfig)) and len(shape) == 3 and all(map(is_int, shape))):
        return None  # no image size to compare with, or the key's own rule says what is wrong
    pixels = shape[1] * shape[2]
    objective = select_or_none(cfg, "model.objective._target_") or select_or_none(
        cfg, "model._target_"
    )
    model = str(objective).rsplit(".")[-1]
    if not is_int(latent) or latent <= pixels or model in OVERCOMPLETE_MODELS:
        return None
    key = "latent" if select_or_none(cfg, "latent") == latent else "model.latent_dim"
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
    return str(select_or_none(cfg, "model._target_")).rsplit(".")[-1]


def _nesterov_has_momentum(cfg: DictConfig) -> str | None:
    nesterov = select_or_none(cfg, "optimizer.nesterov")
    momentum = select_or_none(cfg, "optimizer.momentum")
    if nesterov is True and is_number(momentum) and momentum <= 0:
        return f"optimizer.nesterov=true needs optimizer.momentum > 0 (torch's SGD), got {momentum}"
    return None


def _dataset_fits(cfg: DictConfig) -> str | None:
    """The validation images come from the chosen dataset's training images (the models are
    built for its image shape, ``model.image_shape: ${data.image_shape}``)."""
    name, val_size = select_or_none(cfg, "data.dataset"), select_or_none(cfg, "data.val_size")
    if name not in dataset_names():
        return None
    data = definition(name)
    n = data.train_images
    if n is not None and is_int(val_size) and val_size >= n:
        return (
            f"data.val_size must be an integer in [1, {n}) (validation images taken from "
            f"{data.name}'s {n:,} training images), got {val_size}"
        )
    return None


def _classes_left(cfg: DictConfig) -> str | None:
    """The classes left out of training are the chosen dataset's, and some remain to train on."""
    name, excluded = (
        select_or_none(cfg, "data.dataset"),
        select_or_none(cfg, "data.exclude_classes"),
    )
    if name not in dataset_names() or not isinstance(excluded, ListConfig):
        return None
    data = definition(name)
    n = data.n_classes  # None for a folder: the datamodule checks them once it is read
    if n is None or not all(is_int(k) and k >= 0 for k in excluded):
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
    name = select_or_none(cfg, "data.dataset")
    val_size, batch = select_or_none(cfg, "data.val_size"), select_or_none(cfg, "data.batch_size")
    eval_batch = select_or_none(cfg, "data.eval_batch_size") or batch
    counted = name in dataset_names() and definition(name).train_images is not None  # a folder: no
    if not counted or not all(map(is_int, (val_size, batch, eval_batch))):
        return None
    data = definition(name)
    images = {"train": data.train_images - val_size, "val": val_size, "test": data.test_images}
    for split, n_images in images.items():
        share = select_or_none(cfg, f"trainer.limit_{split}_batches")
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
    data_source_given,
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


def check_environment(cfg: DictConfig) -> None:
    """What the machine must offer for this config: the package of each logger it names, a GPU
    when ``accelerator=gpu`` asks for one."""
    import torch

    from ae_lab.callbacks.logger_packages import missing_packages

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
