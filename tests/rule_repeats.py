"""Which hand rules of ``ae_lab/config/rules.py`` say no more than what would check their keys
without them (the next rule of the key, else the annotation of the argument it sets), found by
trying both on every value either turns on (tests/test_schema.py)."""

from __future__ import annotations

import math
import types
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ae_lab.config import validation
from ae_lab.config.annotations import Domain
from ae_lab.config.rule import Rule
from ae_lab.config.schema import argument_at
from ae_lab.config.validation import rule_for, settings


def _constants(thing: Any, seen: set[int]) -> set[Any]:
    """The numbers and strings a test function turns on: its constants and its closure's."""
    if id(thing) in seen:
        return set()
    seen.add(id(thing))
    if isinstance(thing, (int, float, str)):
        return {thing}
    if isinstance(thing, (tuple, list, set, frozenset)):
        return set().union(*(_constants(x, seen) for x in thing))
    if isinstance(thing, types.CodeType):
        return _constants(thing.co_consts, seen)
    if callable(thing):
        cells = [c.cell_contents for c in getattr(thing, "__closure__", None) or ()]
        code = getattr(thing, "__code__", None)
        return _constants((code, *cells), seen) if code else set()
    return set()


def _probes(hand: Rule, other: Rule | Domain) -> list[Any]:
    found = (hand.ok, hand.choices, other.ok, other.choices, getattr(other, "landmarks", ()))
    marks = _constants(found, set())
    numbers = {m for m in marks if isinstance(m, (int, float)) and not isinstance(m, bool)}
    near = {m + d for m in numbers | {0, 1, 2} for d in (-1, -0.5, -1e-9, 0, 1e-9, 0.5, 1)}
    values: list[Any] = [None, True, False, "", "a", {}, {"a": 1}, {"_target_": "x"}]
    values += [math.inf, -math.inf, math.nan, *(m for m in marks if isinstance(m, str))]
    for v in near:
        values += [float(v), int(v)] if float(v).is_integer() else [v]
    items = [0, 1, 2, -1, 1.5, "a", True, None, *sorted(numbers)[:20]]
    values += [[x] * n for x in items for n in range(6)] + [[1, 0], [0, 1], [1, -1], [1, "a"]]
    return values


def _accepts(rule: Rule | Domain, value: Any) -> bool:
    try:  # as problems() asks
        return (value is None and rule.nullable) or bool(rule.ok(value))
    except Exception:  # noqa: BLE001 - a test that cannot take the value refuses it
        return False


def same_check(hand: Rule, other: Rule | Domain) -> bool:
    """Whether ``hand`` allows what ``other`` does, on every value either turns on."""
    return all(_accepts(hand, v) == _accepts(other, v) for v in _probes(hand, other))


def _without(hand: Rule, container: dict, key: str) -> tuple[Rule | Domain | None, str]:
    """What checks ``key`` once ``hand`` is deleted: the next hand rule of the key, else the
    annotation (only its check, where ae_lab's own code can carry the rule's note with
    ``doc``; the whole message, where an installed library's cannot), and where it is."""
    rest = (r for r in validation.RULES if r is not hand and validation._matches(r.key, key))
    if (other := next(rest, None)) is not None:
        return other, f'Rule("{other.key}", ...)'
    argument = argument_at(container, key)
    found = argument.domain if argument else None
    if found is None or not (argument.ours or found.allowed == hand.allowed):
        return None, ""
    return found, f"{argument.qualname} in {argument.where}"


def repeated_rules(cfgs: list[DictConfig]) -> dict[str, list[str]]:
    """The hand rules that, at every key of ``cfgs`` they check, say no more than what would
    check the key without them: by rule, those keys and what says the same."""
    repeats: dict[str, set[str]] = {}
    needed: set[str] = set()
    for cfg in cfgs:
        container = OmegaConf.to_container(cfg, resolve=False)
        for key, _, hand in settings(cfg):
            if hand is None or hand is not rule_for(key):
                continue
            other, where = _without(hand, container, key)
            if other is not None and same_check(hand, other):
                repeats.setdefault(hand.key, set()).add(f"{key}: {where}")
            else:
                needed.add(hand.key)
    return {k: sorted(v) for k, v in repeats.items() if k not in needed}


def to_delete(repeats: dict[str, list[str]]) -> str:
    """What a failing check tells its reader to do with the rules ``repeated_rules`` found."""
    lines = [f'  Rule("{rule}", ...): {"; ".join(at)}' for rule, at in repeats.items()]
    return (
        "delete these hand rules from ae_lab/config/rules.py: the annotation of the argument "
        "they check says the same (move a note of the rule's message into the annotation with "
        "annotated_types.doc):\n" + "\n".join(lines)
    )
