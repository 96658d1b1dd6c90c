"""ae_lab's own config groups and their options, as Hydra finds them on ae_lab's config search
path (Hydra's own groups aside): what a trained run's choices are checked against
(``ae_lab.config.trained_run``)."""

from __future__ import annotations

from functools import cache

from ae_lab.config import location


@cache
def options() -> dict[str, tuple[str, ...]]:
    """Every group of ae_lab's config search path (Hydra's own aside) and its options, nested
    ones as ``course/deep_ae_64``."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.object_type import ObjectType

    with initialize_config_dir(config_dir=str(location.config_dir()), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()

        def of(group: str) -> list[str]:
            found = list(loader.get_group_options(group, ObjectType.CONFIG))
            for sub in loader.list_groups(group):
                found += [f"{sub}/{o}" for o in of(f"{group}/{sub}")]
            return found

        return {g: tuple(sorted(of(g))) for g in loader.list_groups("") if g != "hydra"}


def groups() -> tuple[str, ...]:
    """The groups alone."""
    return tuple(options())
