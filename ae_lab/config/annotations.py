"""What an annotation allows, in words and as a test: the reader of ae_lab's config schema.

A constructor states each argument's domain once, in its signature: ``typing.Annotated`` with
annotated_types' constraints (``batch_size: Annotated[int, Ge(1)]``), ``Literal[...]``, ``bool``,
``int`` (never a bool), ``float`` (an int too; finite), ``str``, ``Sequence[...]`` of those,
``X | None``, a mapping, or another class (a nested config with its own ``_target_``);
``doc("...")`` adds a note to the message. ``domain`` turns such an annotation into what a hand
rule of ``ae_lab.config.rules`` says, in the same words (``an integer >= 1``, ``one of bce, mse``,
``a number in [0, 1)``). An annotation it cannot read as a whole (none, ``Any``, a callable, a
name it cannot resolve) states nothing: the argument then needs a better annotation or, in a
class ae_lab cannot annotate (torch's, Lightning's), a hand rule.
"""

from __future__ import annotations

import collections.abc as abc
import inspect
import os
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import annotated_types as at

from ae_lab.config.rule import Rule, built, one_of
from ae_lab.core.values import is_int, is_number

_UNIONS = (typing.Union, types.UnionType)
_SEQUENCES = (list, tuple, abc.Sequence, abc.MutableSequence)
_MAPPINGS = (dict, abc.Mapping, abc.MutableMapping)


@dataclass(frozen=True)
class Domain:
    """What an annotation allows: ``allowed`` in words, ``ok`` as a test of a resolved value."""

    allowed: str
    ok: Callable[[Any], bool]
    nullable: bool = False
    # a Literal's (or bool's) values, which the message lists; () for any other kind
    choices: tuple = ()
    # False: a nested config with a _target_ of its own, whose keys are checked one by one
    whole: bool = True
    # the bounds, lengths and values the test turns on (tests/test_schema.py probes around them)
    landmarks: tuple = ()

    def rule(self, key: str) -> Rule:
        names = tuple(c for c in self.choices if isinstance(c, str))
        return Rule(key, self.allowed, self.ok, self.nullable, names, self.whole)


def domain(annotation: Any) -> Domain | None:
    """The domain ``annotation`` states; None where it states none that ae_lab reads."""
    return _annotated(annotation, ())


def _annotated(tp: Any, meta: tuple) -> Domain | None:
    if typing.get_origin(tp) is typing.Annotated:
        base, *more = typing.get_args(tp)
        return _annotated(base, (*meta, *more))
    notes = [m.documentation for m in meta if hasattr(m, "documentation")]  # doc("...")
    flat = tuple(
        part
        for m in meta
        if not hasattr(m, "documentation")
        for part in (m if isinstance(m, at.GroupedMetadata) else (m,))
    )
    found = _kind(tp, flat)
    if found is None or not notes:
        return found
    return replace(found, allowed=f"{found.allowed} ({'; '.join(notes)})")


def _kind(tp: Any, meta: tuple) -> Domain | None:
    origin = typing.get_origin(tp)
    if origin in _UNIONS:
        return _union(typing.get_args(tp), meta)
    if origin is Literal or tp is bool:
        return None if meta else _choices(typing.get_args(tp) if origin else (True, False))
    if tp in (int, float):
        return _number(tp, meta)
    if tp is str or (inspect.isclass(tp) and issubclass(tp, os.PathLike)):
        return _text(tp, meta)
    if tp in _SEQUENCES or origin in _SEQUENCES:
        return _sequence(tp, meta)
    if tp in _MAPPINGS or origin in _MAPPINGS:
        return None if meta else Domain("a mapping", lambda v: isinstance(v, dict))
    if inspect.isclass(tp) and tp not in (object, Any, type(None)) and not meta:
        article = "an" if tp.__name__[:1].lower() in "aeiou" else "a"
        return Domain(f"{article} {tp.__name__} config with _target_", built, whole=False)
    return None


def _show(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _choices(values: tuple, nullable: bool = False) -> Domain:
    names = list(dict.fromkeys(_show(v) for v in values))  # 32 and "32" read the same
    if any(isinstance(v, bool) for v in values):  # true, false or link
        names += ["null"] if nullable else []
        allowed = f"{', '.join(names[:-1])} or {names[-1]}"
    else:
        names = ["null", *names] if nullable else names
        allowed = f"one of {', '.join(names)}" if len(names) > 1 else names[0]
    return Domain(allowed, one_of(*values), nullable, tuple(values), landmarks=tuple(values))


def _union(members: tuple, meta: tuple) -> Domain | None:
    nullable = type(None) in members
    parts = [_annotated(m, meta) for m in members if m is not type(None)]
    if not parts or None in parts:
        return None
    if all(p.choices for p in parts):
        return _choices(tuple(v for p in parts for v in p.choices), nullable)
    parts.sort(key=lambda p: p.allowed.startswith("a list"))  # its "each ..." last
    words = list(dict.fromkeys(p.allowed for p in parts))
    for wider, narrower in (("a path", "a string"), ("a number", "an integer")):  # str | Path
        if wider in words and narrower in words:
            words.remove(narrower)
    return Domain(
        " or ".join(words + (["null"] if nullable else [])),
        lambda v: any(p.ok(v) for p in parts),
        nullable,
        whole=all(p.whole for p in parts),
        landmarks=tuple(m for p in parts for m in p.landmarks),
    )


def _fmt(x: Any) -> str:
    return str(int(x)) if isinstance(x, float) and x.is_integer() else str(x)


def _number(tp: type, meta: tuple) -> Domain | None:
    """``an integer`` or ``a number`` with its bounds: ``>= 1``, ``in [0, 1)``."""
    low = high = step = None  # (bound, inclusive), (bound, inclusive), multiple
    for m in meta:
        if isinstance(m, (at.Ge, at.Gt)):
            low = (m.ge, True) if isinstance(m, at.Ge) else (m.gt, False)
        elif isinstance(m, (at.Le, at.Lt)):
            high = (m.le, True) if isinstance(m, at.Le) else (m.lt, False)
        elif isinstance(m, at.MultipleOf):
            step = m.multiple_of
        else:
            return None
    words = []
    if low and high:
        words.append(
            f"in {'[' if low[1] else '('}{_fmt(low[0])}, {_fmt(high[0])}{']' if high[1] else ')'}"
        )
    elif low or high:
        bound, inclusive = low or high
        words.append(f"{'>' if low else '<'}{'=' if inclusive else ''} {_fmt(bound)}")
    if step is not None:
        words.append(f"a multiple of {_fmt(step)}")
    kind, is_kind = ("an integer", is_int) if tp is int else ("a number", is_number)

    def ok(v: Any) -> bool:
        if not is_kind(v):
            return False
        fits_low = low is None or (v >= low[0] if low[1] else v > low[0])
        fits_high = high is None or (v <= high[0] if high[1] else v < high[0])
        return fits_low and fits_high and (step is None or v % step == 0)

    allowed = " ".join([kind, " and ".join(words)]).strip()
    marks = tuple(b for b in (low and low[0], high and high[0], step) if b is not None)
    return Domain(allowed, ok, landmarks=marks)


def _lengths(meta: tuple) -> tuple[int, int | None] | None:
    low, high = 0, None
    for m in meta:
        if isinstance(m, at.MinLen):
            low = m.min_length
        elif isinstance(m, at.MaxLen):
            high = m.max_length
        else:
            return None
    return low, high


def _size(low: int, high: int | None, unit: str) -> str:
    if high is not None and low == high:
        return f"of {low} {unit}"
    if high is not None:
        return f"of {low} to {high} {unit}" if low else f"of at most {high} {unit}"
    return f"of at least {low} {unit}" if low else ""


def _fits(n: int, low: int, high: int | None) -> bool:
    return low <= n and (high is None or n <= high)


def _text(tp: type, meta: tuple) -> Domain | None:
    lengths = _lengths(meta)
    if lengths is None:
        return None
    size = _size(*lengths, "characters")
    allowed = " ".join(["a string" if tp is str else "a path", size]).strip()
    return Domain(
        allowed, lambda v: isinstance(v, str) and _fits(len(v), *lengths), landmarks=lengths
    )


def _sequence(tp: Any, meta: tuple) -> Domain | None:
    """``a list of 1 to 3 items, each an integer >= 1``: a list (tuple, Sequence) of one kind."""
    args, lengths = typing.get_args(tp), _lengths(meta)
    if lengths is None:
        return None
    if len(args) == 2 and args[1] is Ellipsis:
        args = args[:1]
    elif len(args) > 1 and (typing.get_origin(tp) or tp) is tuple and len(set(args)) == 1:
        lengths, args = (len(args), len(args)), args[:1]  # tuple[int, int, int]
    item = _annotated(args[0], ()) if len(args) == 1 else None
    if item is None or not item.whole:
        return None
    size = _size(*lengths, "items")
    allowed = f"{' '.join(['a list', size]).strip()}, each {item.allowed}"

    def ok(v: Any) -> bool:
        if not isinstance(v, (list, tuple)) or not _fits(len(v), *lengths):
            return False
        return all((x is None and item.nullable) or item.ok(x) for x in v)

    return Domain(allowed, ok, landmarks=(*lengths, *item.landmarks))
