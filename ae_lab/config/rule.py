"""The vocabulary of the rules: what a value may be (predicates), and ``Rule`` itself.

Kept apart from the table (``ae_lab.config.rules``) so that a rule reads as one line there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ae_lab.core.errors import did_you_mean
from ae_lab.core.values import is_int, is_number

# what lightning.seed_everything accepts (lightning.fabric.utilities.seed: a uint32)
SEED_RANGE = (0, 2**32 - 1)
# objectives whose penalty, not a narrow bottleneck, keeps a model from copying the input, so its
# code may be wider than the image: the class name of ``model.objective._target_``, and the option
# that picks it
OVERCOMPLETE_MODELS = {"Sparse": "sparse_ae"}
# Lightning's precision flags (lightning.fabric.plugins.precision.precision._PRECISION_INPUT; a
# test compares them)
PRECISIONS = (
    "transformer-engine",
    "transformer-engine-float16",
    "16-true",
    "16-mixed",
    "bf16-true",
    "bf16-mixed",
    "32-true",
    "64-true",
    64,
    32,
    16,
    "64",
    "32",
    "16",
    "bf16",
)
# Lightning's accelerator names (its AcceleratorRegistry, plus auto and gpu; a test compares them)
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")
# Lightning's profiler names (lightning.pytorch.trainer.connectors: PROFILERS)
PROFILERS = ("simple", "advanced", "pytorch", "xla")
# keys that Hydra's instantiate reads (which class to build, and how), not settings of it
INSTANTIATE_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")


def at_least(lo: int) -> Callable[[Any], bool]:
    return lambda v: is_int(v) and v >= lo


def between(lo: int, hi: int) -> Callable[[Any], bool]:
    return lambda v: is_int(v) and lo <= v <= hi


def number(test: Callable[[float], bool]) -> Callable[[Any], bool]:
    return lambda v: is_number(v) and test(v)


def one_of(*choices: Any) -> Callable[[Any], bool]:
    """Exact values: ``True`` is not ``1`` and ``"32"`` is not ``32``."""
    return lambda v: any(type(v) is type(c) and v == c for c in choices)


def either(*tests: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: any(test(v) for test in tests)


def widths(min_len: int, max_len: int | None = None) -> Callable[[Any], bool]:
    """A list of layer widths or channel counts, each an integer >= 1."""

    def ok(v: Any) -> bool:
        fits = min_len <= len(v) <= (max_len or len(v)) if isinstance(v, list) else False
        return fits and all(is_int(w) and w >= 1 for w in v)

    return ok


def indices(v: Any) -> bool:
    """A list of indices (class labels), each an integer >= 0; [] for none."""
    return isinstance(v, list) and all(is_int(i) and i >= 0 for i in v)


def flag(v: Any) -> bool:
    return isinstance(v, bool)


def text(v: Any) -> bool:
    return isinstance(v, str)


def mapping(v: Any) -> bool:
    return isinstance(v, dict)


def built(v: Any) -> bool:
    """A config that instantiate builds into an object."""
    return isinstance(v, dict) and "_target_" in v


def never(v: Any) -> bool:
    return False


def batches(v: Any) -> bool:
    """Lightning's batch limits: a count, or a share of the batches."""
    return (is_int(v) and v >= 0) or (isinstance(v, float) and 0 <= v <= 1)


def devices(v: Any) -> bool:
    """Lightning's ``devices``: a count, -1 for all, auto, or device indices (a list or "0,1")."""
    if v == "auto" or (is_int(v) and (v >= 1 or v == -1)):
        return True
    if isinstance(v, list):
        return bool(v) and all(is_int(i) and i >= 0 for i in v)
    return isinstance(v, str) and re.fullmatch(r"-1|\d+|\d+(\s*,\s*\d+)*\s*,?", v) is not None


@dataclass(frozen=True)
class Rule:
    key: str
    allowed: str
    ok: Callable[[Any], bool]
    nullable: bool = False
    # the names a string close to one of them is pointed to ("did you mean ...?")
    choices: tuple[str, ...] = ()
    # the value is a mapping checked as a whole; its own keys have no rules
    whole: bool = False

    def complaint(self, key: str, value: Any) -> str:
        shown = str(value).lower() if isinstance(value, bool) else repr(value)  # as typed
        return f"{key} must be {self.allowed}, got {shown}{did_you_mean(value, self.choices)}"


def choice(key: str, *choices: str, nullable: bool = False, note: str = "") -> Rule:
    names = ("null", *choices) if nullable else choices
    allowed = "one of " + ", ".join(names) + (f" ({note})" if note else "")
    return Rule(key, allowed, one_of(*choices), nullable=nullable, choices=choices)


BOOL = "true or false"
SEED = f"an integer in [{SEED_RANGE[0]}, {SEED_RANGE[1]}] (what lightning.seed_everything takes)"
BATCHES = "an integer >= 0 (batches) or a number in [0, 1] (a share of them)"
FOLDER = "a folder's path"
