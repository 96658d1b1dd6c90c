"""Samples per second from per-epoch timings: the steady epochs (after the first), several runs
pooled, and ae_lab's rounds each against the plain loops right before and after it.
"""

from __future__ import annotations

from statistics import mean, median
from typing import Any

PER_EPOCH = ("epoch_s", "cpu_s", "samples")


def steady_part(per_epoch: list[Any]) -> list[Any]:
    """The epochs after the first when there are several: the first also pays for warm-up
    (allocator, torch.compile), which a longer run amortises."""
    return per_epoch[1:] if len(per_epoch) > 1 else per_epoch


def rates(per_epoch: dict[str, list[Any]]) -> dict[str, float]:
    """Samples per wall second and per CPU second, and the mean epoch time."""
    samples, wall, cpu = sum(per_epoch["samples"]), per_epoch["epoch_s"], per_epoch["cpu_s"]
    return {"rate": samples / sum(wall), "cpu_rate": samples / sum(cpu), "epoch": mean(wall)}


def summarise(result: dict[str, Any]) -> None:
    """Adds ``rates`` over the steady epochs of one run."""
    result.update(rates({k: steady_part(result[k]) for k in PER_EPOCH}))


def pool(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from several runs of the same loop: their steady epochs together."""
    pooled = {k: [x for r in results for x in steady_part(r[k])] for k in PER_EPOCH}
    return {**pooled, **rates(pooled)}


def pooled_rounds(rounds: list[dict[str, Any]], plains: list[dict[str, Any]]) -> dict[str, Any]:
    """ae_lab's rounds pooled, with each round's ratio to the plain loop run right before and
    right after it (``plains[k]`` and ``plains[k + 1]``). On a shared machine the load changes
    from one minute to the next; a ratio within a round sees the same load on both sides, and the
    median over rounds drops the round that a burst of load hit on one side only."""
    done = [(k, r) for k, r in enumerate(rounds) if "failed" not in r]
    if not done:
        return rounds[0]
    result = pool([r for _, r in done])
    for key, rate in (("ratios", "rate"), ("cpu_ratios", "cpu_rate")):
        result[key] = [pool([r])[rate] / pool(plains[k : k + 2])[rate] for k, r in done]
    for key in ("startup_s", "pca_fit_s", "wall_s"):
        values = [r[key] for _, r in done if r.get(key) is not None]
        result[key] = median(values) if values else None
    result["best_ratio"] = fastest_epoch(result) / fastest_epoch(pool(plains))
    return result


def fastest_epoch(result: dict[str, Any]) -> float:
    """Samples/s of the fastest steady epoch: the one least slowed by other load. Interference
    only ever slows a loop down, so fastest against fastest is the least disturbed ratio."""
    return max(n / s for n, s in zip(result["samples"], result["epoch_s"], strict=True))
