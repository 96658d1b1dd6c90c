"""Keys that the object their node builds takes no argument for, found before any work.

``instantiate`` would refuse ``+model.foo=1`` or ``+trainer.max_epoch=3`` (a typo Hydra suggests
the ``+`` for) with a traceback only once the run has started, after the data is read; these ask
the signatures first, and name the closest argument.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ae_lab.config.rule import INSTANTIATE_KEYS
from ae_lab.core.errors import ConfigError, did_you_mean


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
    found = trainer_problems(cfg) + argument_problems(cfg)
    if found:
        raise ConfigError("\n".join(found))


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
