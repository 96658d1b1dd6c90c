"""ae_lab's own config groups and their options, and the keys of a config composed with them:
what a trained run's files may name (``ae_lab.config.trained_run``)."""

from __future__ import annotations

from functools import cache
from typing import Any

from omegaconf import DictConfig

from ae_lab.config import location


@cache
def group_options() -> dict[str, tuple[str, ...]]:
    """Every group of ae_lab's config search path (Hydra's own aside) and its options, nested
    ones as ``course/deep_ae_64``."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.object_type import ObjectType

    with initialize_config_dir(config_dir=str(location.config_dir()), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()

        def options(group: str) -> list[str]:
            found = list(loader.get_group_options(group, ObjectType.CONFIG))
            for sub in loader.list_groups(group):
                found += [f"{sub}/{o}" for o in options(f"{group}/{sub}")]
            return found

        return {g: tuple(sorted(options(g))) for g in loader.list_groups("") if g != "hydra"}


def groups() -> tuple[str, ...]:
    return tuple(group_options())


def compose_eval(overrides: list[str]) -> DictConfig:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(location.config_dir()), version_base="1.3"):
        return compose("eval", overrides=overrides)


def has_key(cfg: DictConfig, key: str) -> bool:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return False
        node = node._get_node(part)
    return True
