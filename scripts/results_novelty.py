"""The novelty study's section of the results page (``report.novelty`` of
conf/experiment/novelty.yaml and novelty_bakeoff.yaml): the AUROC of each model's reconstruction
error for the digit left out of training against the rest, one row per digit and one column per
model and PCA (``pca/novelty_auroc``, as many components as the latent), mean ± std over seeds,
and the mean over the digits per model; beside it the published figures the preset declares, with
their protocol. Every number comes from the sweep's records.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ae_lab.reporting import collect, formatting, groups

if TYPE_CHECKING:
    from scripts.results_sweep import Sweep

AUROC, PCA_AUROC = "novelty/auroc", "pca/novelty_auroc"
MISSING = "missing"
MEAN_NOTE = " The mean over digits: the mean of the per-digit means, ± their std over the digits."
_HELD_OUT = re.compile(r"(?:^|\s)\+?data\.exclude_classes=\[\s*(\d+)\s*\]")
_SEED = re.compile(r"(?:^|\s)\+?seed=(\d+)")


def held_out(row: Mapping[str, Any]) -> int | None:
    """The one digit a job left out of training, from its overrides (None: none, or several)."""
    found = _HELD_OUT.search(str(row.get("overrides") or ""))
    return int(found.group(1)) if found else None


def seed_of(row: Mapping[str, Any]) -> int | None:
    found = _SEED.search(str(row.get("overrides") or ""))
    return int(found.group(1)) if found else None


def _values(rows: Iterable[Mapping[str, Any]], metric: str) -> list[float]:
    return [float(r[metric]) for r in rows if groups.is_number(r.get(metric))]


def cell_stats(sweep: Sweep, models: Sequence[str], digit: int) -> dict[str, groups.Stat | None]:
    """Each model's AUROC for ``digit`` over its finished seeds, and PCA's: one value per seed
    (PCA is fitted on the same training images whatever the model, so the models' jobs of one seed
    agree on it; the first finished one stands for its seed)."""
    done = [r for r in sweep.rows if r["status"] == "completed" and held_out(r) == digit]
    out: dict[str, groups.Stat | None] = {}
    for model in models:
        values = _values((r for r in done if r.get("model") == model), AUROC)
        out[model] = groups.Stat.of(values) if values else None
    per_seed: dict[int | None, float] = {}
    for row in done:
        if groups.is_number(row.get(PCA_AUROC)):
            per_seed.setdefault(seed_of(row), float(row[PCA_AUROC]))
    out["PCA"] = groups.Stat.of(list(per_seed.values())) if per_seed else None
    return out


def _cell(stat: groups.Stat | None) -> str:
    if stat is None:
        return MISSING
    return formatting.fmt(stat, AUROC, "{:.3f}") + (f" (n={stat.n})" if stat.n > 1 else "")


def auroc_table(sweep: Sweep, models: Sequence[str], digits: Sequence[int]) -> tuple[str, list]:
    """The per-digit table and its mean row, and what is missing from it (model, digit)."""
    columns = [*models, "PCA"]
    lines = [
        "| digit held out | " + " | ".join(f"`{c}`" for c in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    means: dict[str, list[float]] = {c: [] for c in columns}
    missing = []
    for digit in digits:
        stats = cell_stats(sweep, models, digit)
        for column, stat in stats.items():
            if stat is None:
                missing.append((column, digit))
            else:
                means[column].append(stat.mean)
        lines.append(f"| {digit} | " + " | ".join(_cell(stats[c]) for c in columns) + " |")
    if len(digits) > 1:
        row = []
        for column in columns:
            found = means[column]
            if not found:
                row.append(MISSING)
                continue
            stat = groups.Stat.of(found)
            of = "" if len(found) == len(digits) else f" of {len(digits)}"
            row.append(f"{formatting.fmt(stat, AUROC, '{:.3f}')} ({len(found)}{of} digits)")
        lines.append("| mean over digits | " + " | ".join(row) + " |")
    return "\n".join(lines), missing


def protocol(sweep: Sweep) -> str:
    """Epochs, latent and seeds, as the sweep's config and its finished runs say."""
    cfg = collect.sweep_config(sweep.path)
    epochs = (cfg.get("trainer") or {}).get("max_epochs")
    latents = sorted({r["latent"] for r in sweep.rows if r.get("latent") is not None})
    seeds = sorted(
        {s for r in sweep.rows if r["status"] == "completed" for s in [seed_of(r)]},
        key=lambda s: -1 if s is None else s,
    )
    named = [str(s) if s is not None else str(cfg.get("seed", "the default")) for s in seeds]
    parts = [f"{epochs} epoch{'s' if epochs != 1 else ''} per job (`trainer.max_epochs`)"]
    parts.append("latent " + ", ".join(map(str, latents)) if latents else "latent not recorded")
    count = len(seeds)
    parts.append(f"{count} seed{'s' if count != 1 else ''} ({', '.join(named) or 'none finished'})")
    return "Protocol: " + "; ".join(parts) + "."


def published_table(sweep: Sweep, models: Sequence[str], spec: Mapping[str, Any]) -> list[str]:
    """The declared published figure (a range, ``low``-``high``) beside each model's AUROC at the
    same protocol, and the linear probe (``spec['probe']``) beside its published figure, if any."""
    ref = spec.get("published") or {}
    digits = spec.get("digits") or list(range(10))
    probe = spec.get("probe")
    probe_ref = spec.get("probe_published")
    low, high = float(ref["low"]), float(ref["high"])
    head = "| model | protocol | `novelty/auroc` | published | in the published range |"
    rule = "|---|---|---|---|---|"
    if probe:
        head += f" `{probe}` | published (550 labels) |"
        rule += "---|---|"
    lines = [head, rule]
    for model in models:
        done = [
            r
            for r in sweep.rows
            if r["status"] == "completed" and r.get("model") == model and held_out(r) in digits
        ]
        values = _values(done, AUROC)
        stat = groups.Stat.of(values) if values else None
        verdict = ""
        if stat is not None:
            verdict = "yes" if low <= stat.mean <= high else "below" if stat.mean < low else "above"
        row = (
            f"| `{model}` | {ref['protocol']} | {_cell(stat)} | {low:.2f}-{high:.2f} | {verdict} |"
        )
        if probe:
            accs = _values(done, probe)
            acc = formatting.fmt(groups.Stat.of(accs), probe) if accs else MISSING
            stated = formatting.fmt(float(probe_ref), probe) if probe_ref else "not stated"
            row += f" {acc} | {stated} |"
        lines.append(row)
    lines += ["", f"Published: {ref['what']} ({ref['protocol']}): {ref['source']}."]
    if probe and not probe_ref:
        lines.append(
            f"`{probe}`: 55 labels per class, 550 in all, ae_bakeoff's budget; its own "
            "accuracy at that budget is not stated at a source checked here, so none is shown."
        )
    return lines


def section(sweep: Sweep) -> tuple[list[str], list[str]]:
    """The section's markdown lines and what is missing from it."""
    spec = sweep.declared["novelty"]
    models = list(spec.get("models") or [])
    digits = [int(d) for d in spec.get("digits") or range(10)]
    done = sum(r["status"] == "completed" for r in sweep.rows)
    table, missing = auroc_table(sweep, models, digits)
    lines = [
        f"## {sweep.title}",
        "",
        f"Command: `{sweep.command()}` (sweep `{sweep.path.name}`, {done} of {len(sweep.rows)} "
        f"runs completed, {sweep.launch()}). {protocol(sweep)}",
        "",
        "AUROC of the test reconstruction error, the digit left out of training against the "
        "other nine (`novelty/auroc`; PCA: `pca/novelty_auroc` with as many components as the "
        "latent); each cell the mean ± sample std (ddof=1) over its finished seeds."
        + (MEAN_NOTE if len(digits) > 1 else ""),
        "",
        table,
        "",
    ]
    if spec.get("published"):
        lines += [*published_table(sweep, models, spec), ""]
    gone = [
        f"{sweep.title}: {column}, digit {digit}: job not finished" for column, digit in missing
    ]
    return lines, gone
