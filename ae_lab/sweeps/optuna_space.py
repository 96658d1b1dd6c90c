"""The search space of ``hparams_search=optuna``, read from Hydra's sweep expressions.

``hydra.sweeper.params`` and the command line hold Hydra overrides (``choice(64, 128)``,
``interval(1e-4, 1e-2)``, ``tag(log, interval(...))``, ``range(1, 5)``); each is read with Hydra's
override parser into an Optuna distribution, as Hydra's Optuna sweeper read them, and a value
that is no sweep is a fixed parameter every trial gets. A trial draws its parameters through
Optuna's public ``suggest_*`` API.
"""

from __future__ import annotations

from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    IntervalSweep,
    Override,
    RangeSweep,
    Transformer,
)
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import Trial

from ae_lab.core.errors import ConfigError

CHOICE_TYPES = (str, int, float, bool, type(None))


def _choices(override: Override) -> CategoricalDistribution:
    choices = list(override.sweep_iterator(transformer=Transformer.encode))
    for choice in choices:
        if not isinstance(choice, CHOICE_TYPES):
            raise ConfigError(
                f"hydra.sweeper.params.{override.get_key_element()}: a choice takes numbers, "
                f"strings, booleans or null, not {choice!r}"
            )
    return CategoricalDistribution(choices)


def distribution(override: Override) -> BaseDistribution | str:
    """The distribution of a sweep override; a fixed value as its text."""
    if not override.is_sweep_override():
        return override.get_value_element_as_str()
    value = override.value()
    if override.is_choice_sweep():
        return _choices(override)
    if override.is_range_sweep():
        assert isinstance(value, RangeSweep)
        if value.shuffle:
            return _choices(override)
        # from start to stop, stop included: as Hydra's Optuna sweeper read range()
        if any(isinstance(v, float) for v in (value.start, value.stop, value.step)):
            return FloatDistribution(value.start, value.stop, step=value.step)
        return IntDistribution(int(value.start), int(value.stop), step=int(value.step))
    if override.is_interval_sweep():
        assert isinstance(value, IntervalSweep)
        log = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log)
        return FloatDistribution(value.start, value.end, log=log)
    raise ConfigError(
        f"hydra.sweeper.params.{override.get_key_element()}: the Optuna search takes "
        "choice(...), range(...), interval(...) or tag(log, interval(...))"
    )


def parse(overrides: list[str]) -> tuple[dict[str, BaseDistribution], dict[str, str]]:
    """The search space and the fixed parameters of some overrides, each key by its last
    override (``hydra.sweeper.params`` first, then the command line)."""
    space: dict[str, BaseDistribution] = {}
    fixed: dict[str, str] = {}
    for override in OverridesParser.create().parse_overrides(overrides):
        name = override.get_key_element()
        found = distribution(override)
        if isinstance(found, BaseDistribution):  # a key keeps its place: it orders job names
            fixed.pop(name, None)
            space[name] = found
        else:
            space.pop(name, None)
            fixed[name] = found
    return space, fixed


def suggest(trial: Trial, name: str, dist: BaseDistribution) -> Any:
    """The trial's value of ``name`` drawn from ``dist`` (a queued trial's, if it has one)."""
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    raise TypeError(f"no suggest for {type(dist).__name__}")
