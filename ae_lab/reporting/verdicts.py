"""ae_lab's figures beside published ones: which group measured each published figure, and the
"beaten" verdict, which takes the spread over seeds into account (``BEATEN_RULE``, printed beside
every such table). The published figures are what a report preset declares (``report.reference``:
``metric``, ``value``, ``what``, optionally ``job`` and ``note``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from ae_lab.reporting import groups, metrics
from ae_lab.reporting.metrics import LOWER

# how the results page and summary.md decide "beaten" (printed beside the tables)
BEATEN_RULE = (
    "beaten: *same* when ae_lab's mean, rounded as the published figure is, lies within one unit "
    "of its last digit; "
    "otherwise *yes* only when the published value lies outside mean ± 2·std/√n on ae_lab's "
    "worse side (ae_lab better beyond the noise), *no* when it lies beyond it on the better side, "
    "*within noise* in between (std: sample standard deviation over the n seeds; with one seed "
    "there is no spread and the value alone decides). A count (PCA components) is *same* or "
    "*differs*."
)


def decimals(published: float) -> int:
    """How many decimals the published figure was written with (0.009948: 6; 90: 0)."""
    exponent = Decimal(repr(float(published))).normalize().as_tuple().exponent
    return max(0, -int(exponent))


def beaten(name: str, ours: float, published: float, std: float | None = None, n: int = 1) -> str:
    """The verdict of ``BEATEN_RULE`` for ae_lab's mean ``ours`` (``std`` over ``n`` runs)."""
    metric = metrics.find(name)
    better = metric.better if metric else LOWER
    if better is None:
        return "same" if round(ours) == round(published) else "differs"
    places = decimals(published)
    unit = 10.0**-places  # the published figure's last digit
    if abs(round(ours, places) - published) <= unit * (1 + 1e-9):
        return "same"
    margin = 2 * std / math.sqrt(n) if std is not None and n > 1 else 0.0
    ahead = published - ours if better == LOWER else ours - published
    if ahead > margin:
        return "yes"
    if -ahead > margin:
        return "no"
    return "within noise"


def compare(
    group_rows: Sequence[dict[str, Any]], reference: Iterable[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One line per published figure and group that measured it: ``what``, ``metric``,
    ``published``, ``ours`` (the mean; None when no job has it yet), ``std``, ``n``, ``ratio``
    (ours / published), ``beaten`` (``BEATEN_RULE``), ``run`` and the reference's ``note``. A
    reference with a ``job`` only matches that preset job (``report_job``); without one, every
    group."""
    lines = []
    for ref in reference:
        metric, published = ref["metric"], float(ref["value"])
        matching = [
            g
            for g in group_rows
            if isinstance(g.get(metric), groups.Stat)
            and ref.get("job") in (None, g.get("report_job"))
        ]
        base = {
            "what": ref.get("what", ""),
            "metric": metric,
            "published": published,
            "note": ref.get("note"),
        }
        if not matching:
            run = ref.get("job", "")
            lines.append({**base, "ours": None, "std": None, "n": 0, "ratio": None, "run": run})
        for g in matching:
            stat: groups.Stat = g[metric]
            run = g.get("report_job") or g["overrides"] or g["job"]
            verdict = beaten(metric, stat.mean, published, stat.std, stat.n)
            lines.append(
                {
                    **base,
                    **{"ours": stat.mean, "std": stat.std, "n": stat.n, "run": run},
                    **{"ratio": stat.mean / published, "beaten": verdict},
                }
            )
    return lines
