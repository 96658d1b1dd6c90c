"""Jobs of a sweep that differ only in the keys averaged over (``seed`` by default) form one
group; a group reports every numeric metric as its mean, sample standard deviation (ddof=1) and
the number of completed jobs that logged it.

``group_rows(rows, average_over)`` is the one grouping of the sweep summary, the results page and
their figures. The keys averaged over are a setting: ``report.average_over`` in a report preset
(e.g. ``[seed, data.exclude_classes]`` for one mean per model over the excluded classes) or
``--average-over`` of ``python -m ae_lab.reporting.report``. Only completed jobs count, so a group
whose seeds are still running shows the seeds that finished, with their ``n``.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ae_lab.core.identity import override_key, under

AVERAGE_OVER = ("seed",)  # what a sweep is averaged over unless its report says otherwise
COMPLETED = "completed"
# what describes a job rather than measures it: never averaged, shared by the group
DESCRIPTION = ("job", "overrides", "status", "model", "transform", "report_job", "latent", "error")


@dataclass(frozen=True)
class Stat:
    """A metric over a group's completed jobs: mean, sample std (ddof=1; None below 2 values)."""

    mean: float
    std: float | None
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        std = statistics.stdev(values) if len(values) > 1 else None
        return cls(statistics.fmean(values), std, len(values))


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def averaged(override: str, average_over: Iterable[str]) -> bool:
    """Whether an override sets one of the keys averaged over (``seed=1``, ``+seed=1``)."""
    return under(override_key(override), tuple(average_over))


def split_overrides(overrides: str, average_over: Iterable[str]) -> tuple[str, str]:
    """A job's overrides as (what defines its group, the averaged-over part)."""
    average_over = tuple(average_over)
    parts = overrides.split()
    kept = [o for o in parts if not averaged(o, average_over)]
    return " ".join(kept), " ".join(o for o in parts if averaged(o, average_over))


def _number_or_text(text: str) -> tuple[int, float, str]:
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


def natural_key(text: str | None) -> tuple[Any, ...]:
    """Sorts ``latent=2`` < ``latent=8`` < ``latent=32`` and ``p=0.25`` < ``p=0.5``: each run
    of digits (with its decimals) compares as a number, the rest as text."""
    parts = re.split(r"(-?\d+(?:\.\d+)?(?:e-?\d+)?)", text or "")
    return tuple(_number_or_text(p) if i % 2 else (1, 0.0, p) for i, p in enumerate(parts))


def _shared(values: Iterable[Any]) -> Any:
    """The value every job of a group has; when they differ, the distinct ones joined."""
    distinct = list(dict.fromkeys(v for v in values if v is not None))
    if len(distinct) <= 1:
        return distinct[0] if distinct else None
    return "; ".join(map(str, distinct))


def _status(statuses: Sequence[str]) -> str:
    done = statuses.count(COMPLETED)
    if done == len(statuses):
        return COMPLETED
    if len(statuses) == 1:
        return statuses[0]
    return f"{done} of {len(statuses)} completed"


def group_rows(
    rows: Sequence[Mapping[str, Any]], average_over: Iterable[str] = AVERAGE_OVER
) -> list[dict[str, Any]]:
    """One row per group of ``rows`` (``ae_lab.reporting.collect.collect``'s job rows), in
    numeric order of their overrides: the description the jobs share, ``n`` (jobs in the group),
    ``completed``, ``averaged`` (the averaged-over overrides of its jobs, e.g. ``seed=0 seed=1``),
    ``job`` (their folders, space-separated) and, for every numeric metric of a completed job,
    a ``Stat``."""
    average_over = tuple(average_over)
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        # a job without overrides (a sweep of one job run with -m) is a group of its own
        overrides = row.get("overrides")
        key = split_overrides(overrides, average_over)[0] if overrides else str(row.get("job"))
        groups.setdefault(key, []).append(row)
    out = []
    for key, members in groups.items():
        done = [r for r in members if r.get("status") == COMPLETED]
        shared = (k for k in DESCRIPTION if k != "job")  # ``job``: every job's folder
        group: dict[str, Any] = {k: _shared(r.get(k) for r in members) for k in shared}
        group.update(
            overrides=key,
            status=_status([str(r.get("status")) for r in members]),
            n=len(members),
            completed=len(done),
            averaged=" ".join(
                split_overrides(str(r.get("overrides") or ""), average_over)[1] for r in members
            ).strip(),
            job=" ".join(str(r.get("job")) for r in members),
        )
        metrics = [k for r in done for k, v in r.items() if k not in DESCRIPTION and is_number(v)]
        for name in dict.fromkeys(metrics):
            group[name] = Stat.of([float(r[name]) for r in done if is_number(r.get(name))])
        out.append(group)
    return sorted(out, key=lambda g: natural_key(g["overrides"]))


def stats(group: Mapping[str, Any]) -> dict[str, Stat]:
    """The metrics of a group row."""
    return {k: v for k, v in group.items() if isinstance(v, Stat)}


def sort_jobs(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Job rows in numeric order of their overrides."""
    return sorted(rows, key=lambda r: natural_key(str(r.get("overrides") or r.get("job"))))
