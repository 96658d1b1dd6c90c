"""Numbers as the tables write them: one format per column (a headline metric's own, whole
numbers, or 4 significant digits), a group's mean ± std, and integers as integers in a CSV.

The headline metrics (``ae_lab.reporting.metrics``) say how each of their values is written; this
module applies that to cells and columns, for ``summary.md``, ``summary.csv`` and the results page.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from ae_lab.reporting import metrics
from ae_lab.reporting.metrics import COUNT, NUMBER


def is_integral(value: Any) -> bool:
    """An int, or a float with nothing after the point (``44.0`` components, ``202258.0``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return isinstance(value, int) or (math.isfinite(value) and float(value).is_integer())


def _mean(value: Any) -> Any:
    """The number a cell shows: a group's mean (a ``Stat`` of ``ae_lab.reporting.groups``)."""
    return getattr(value, "mean", value)


def column_form(name: str, values: Iterable[Any]) -> str:
    """One format for every cell of a column: the headline metric's own when it has one (a
    share, a count); otherwise whole numbers for a column of whole numbers or one that reaches
    1000 (``43,010`` beside ``875``, never ``4.301e+04``), 4 significant digits for the rest."""
    metric = metrics.find(name)
    if metric is not None and metric.form != NUMBER:
        return metric.form
    numbers = [v for v in map(_mean, values) if isinstance(v, int | float) and math.isfinite(v)]
    if numbers and (all(map(is_integral, numbers)) or max(abs(v) for v in numbers) >= 1000):
        return COUNT
    return NUMBER


def _spread(std: float, form: str) -> str:
    # a standard deviation to 2 significant digits, in the column's unit
    if form != NUMBER:
        return form.format(std)
    two = f"{std:.2g}"
    return f"{std:,.0f}" if "e+" in two else two  # 410, not 4.1e+02


def fmt(value: Any, name: str = "", form: str | None = None) -> str:
    """A table cell: a number in ``form`` (default: the headline metric's, else ``column_form``
    of the value alone), a group's ``Stat`` as ``mean ± std``, text as is."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if hasattr(value, "mean") and hasattr(value, "std"):
        form = form or column_form(name, [value.mean])
        mean = fmt(value.mean, name, form)
        return mean if value.std is None else f"{mean} ± {_spread(value.std, form)}"
    if isinstance(value, float | int) and not isinstance(value, bool):
        form = form or column_form(name, [value])
        return form.format(value)
    return str(value).replace("|", "\\|")


def fmt_column(values: Sequence[Any], name: str = "") -> list[str]:
    """The cells of one column, every number in the same format."""
    form = column_form(name, values)
    return [fmt(v, name, form) for v in values]


def csv_value(value: Any) -> Any:
    """What ``summary.csv`` writes: whole numbers as integers (``202258``, not ``202258.0``)."""
    return int(value) if is_integral(value) and not isinstance(value, bool) else value
