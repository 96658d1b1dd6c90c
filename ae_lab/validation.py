"""Every setting's allowed range, checked once at start-up before any work.

One table instead of checks spread over constructors: a value out of range stops the run with a
message that names the key, the value and what is allowed, rather than failing deep inside
Lightning or torch with a traceback. A rule applies wherever its key exists in the composed
config (``model.weight`` is the sparse and the contractive autoencoder's penalty weight).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ae_lab.errors import AeLabError, ConfigError

MNIST_TRAIN_IMAGES = 60_000


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


@dataclass(frozen=True)
class Rule:
    key: str
    allowed: str
    ok: Callable[[Any], bool]
    nullable: bool = False


def at_least(lo: int) -> Callable[[Any], bool]:
    return lambda v: _is_int(v) and v >= lo


def number(test: Callable[[float], bool]) -> Callable[[Any], bool]:
    return lambda v: _is_number(v) and test(v)


def one_of(*choices: Any) -> Callable[[Any], bool]:
    return lambda v: v in choices


RULES = (
    Rule("latent", "a positive integer (the bottleneck size), e.g. latent=8", at_least(1)),
    Rule("seed", "an integer", at_least(-(2**63)), nullable=True),
    Rule("threads", "an integer >= 1 (torch threads per run)", at_least(1), nullable=True),
    Rule("data.batch_size", "an integer >= 1", at_least(1)),
    Rule("data.eval_batch_size", "an integer >= 1", at_least(1), nullable=True),
    Rule(
        "data.val_size",
        f"an integer in [1, {MNIST_TRAIN_IMAGES}) (validation images taken from the training set)",
        lambda v: _is_int(v) and 1 <= v < MNIST_TRAIN_IMAGES,
    ),
    Rule(
        "data.binarize_target",
        "one of null, threshold, sample",
        one_of("threshold", "sample"),
        nullable=True,
    ),
    Rule("optimizer.lr", "a number > 0 (the learning rate)", number(lambda v: v > 0)),
    Rule("optimizer.weight_decay", "a number >= 0", number(lambda v: v >= 0)),
    Rule("optimizer.momentum", "a number >= 0", number(lambda v: v >= 0)),
    Rule(
        "transform.std", "a number >= 0 (the noise's standard deviation)", number(lambda v: v >= 0)
    ),
    Rule(
        "transform.p",
        "a number in [0, 1) (the share of pixels dropped)",
        number(lambda v: 0 <= v < 1),
    ),
    Rule("transform.threshold", "a number in (0, 1)", number(lambda v: 0 < v < 1)),
    Rule("trainer.max_epochs", "an integer >= 1", at_least(1)),
    Rule("model.beta", "a number >= 0 (the KL weight)", number(lambda v: v >= 0)),
    Rule("model.kl_warmup_epochs", "an integer >= 0", at_least(0)),
    Rule("model.recon_loss", "one of bce, mse", one_of("bce", "mse")),
    Rule("model.weight", "a number >= 0 (the penalty's weight)", number(lambda v: v >= 0)),
    Rule("model.rho", "a number in (0, 1) (the target activation)", number(lambda v: 0 < v < 1)),
    Rule("model.sparsity", "one of kl, l1", one_of("kl", "l1")),
    Rule("model.activation", "one of relu, sigmoid", one_of("relu", "sigmoid")),
    Rule("model.dropout", "a number in [0, 1)", number(lambda v: 0 <= v < 1)),
)

_ABSENT = object()


def _value(cfg: DictConfig, key: str) -> Any:
    try:
        return OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=True)
    except Exception as err:  # noqa: BLE001 - an unresolvable value is reported like a bad one
        return f"<{err}>"


def problems(cfg: DictConfig) -> list[str]:
    """One line per setting out of range: ``<key> must be <allowed>, got <value>``."""
    found = []
    for rule in RULES:
        value = _value(cfg, rule.key)
        if value is _ABSENT or (value is None and rule.nullable) or rule.ok(value):
            continue
        found.append(f"{rule.key} must be {rule.allowed}, got {value!r}")
    return found


def check_config(cfg: DictConfig) -> None:
    """Raises ``ConfigError`` listing every setting out of range."""
    found = problems(cfg)
    if found:
        raise ConfigError("\n".join(found))


def check_environment(cfg: DictConfig) -> None:
    """What the machine must offer for this config: a GPU when ``accelerator=gpu`` asks for one."""
    import torch

    accelerator = OmegaConf.select(cfg, "trainer.accelerator")
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise AeLabError(
            f"accelerator={accelerator} but torch finds no GPU on this machine "
            "(torch.cuda.is_available() is False). Use accelerator=auto (the GPU when there is "
            "one, else the CPU) or accelerator=cpu."
        )
