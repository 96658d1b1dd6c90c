"""The report presets and their sweeps as the results page reads them: which presets have a page
(``presets``), and one preset's finished or partly finished sweep (``Sweep``): its jobs' rows,
their groups over seeds, and what Hydra recorded of how it ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ae_lab.core import records
from ae_lab.reporting import collect, groups, older

PRESETS_DIR = Path(__file__).resolve().parent.parent / "conf" / "experiment"


def presets() -> dict[str, dict[str, Any]]:
    """The report presets of ``conf/experiment/``, by name: those whose ``report`` declares what
    the results page shows (reference figures, figures, or the novelty study's table:
    ``novelty``); a preset that declares only how its sweep summary groups jobs
    (``average_over``) has no page."""
    found = {p.stem: collect.load_yaml(p) or {} for p in sorted(PRESETS_DIR.glob("*.yaml"))}
    page = ("reference", "figures", "novelty")
    return {
        name: cfg["report"]
        for name, cfg in found.items()
        if any((cfg.get("report") or {}).get(k) for k in page)
    }


@dataclass
class Sweep:
    """One report's finished (or partly finished) sweep, as the page reads it."""

    path: Path
    preset: str | None  # the experiment it ran
    declared: dict[str, Any]  # what its preset declares under ``report``
    rows: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Sweep:
        """The sweep as its records and its own declaration say; a sweep folder of an older
        ae_lab raises ``older.OlderSweepError``, which says how to regenerate it."""
        older.check(path)
        cfg = collect.sweep_config(path)
        runtime = (cfg.get("hydra") or {}).get("runtime") or {}
        preset = (runtime.get("choices") or {}).get("experiment")
        return cls(path, preset, collect.declared(cfg), collect.collect(path))

    @property
    def title(self) -> str:
        return self.declared.get("title") or f"Sweep {self.path.name}"

    def runs(self, name: str) -> list[dict[str, Any]]:
        """The finished runs of preset job ``name`` (``course/deep_ae_64``), one per seed, in
        seed order: a running or failed run's curves and figures stay off the page."""
        return [r for r in self.rows if r.get("report_job") == name and r["status"] == "completed"]

    def job(self, name: str) -> dict[str, Any] | None:
        """The first finished run of preset job ``name`` (the one whose pictures are shown)."""
        return next(iter(self.runs(name)), None)

    @property
    def average_over(self) -> tuple[str, ...]:
        return tuple(self.declared.get("average_over") or groups.AVERAGE_OVER)

    @property
    def groups(self) -> list[dict[str, Any]]:
        """The sweep's runs grouped over ``average_over`` (seeds): mean, std and n."""
        return groups.group_rows(self.rows, self.average_over)

    def group(self, name: str) -> dict[str, Any] | None:
        """The statistics of preset job ``name`` over its finished seeds, if any finished."""
        return next(
            (g for g in self.groups if g.get("report_job") == name and g["completed"]), None
        )

    def launch(self) -> str:
        """How the jobs were run, from Hydra's record of the sweep: how many at once, threads,
        and how long the sweep took (``wall_minutes``)."""
        cfg = collect.sweep_config(self.path)
        launcher = (cfg.get("hydra") or {}).get("launcher") or {}
        at_once = launcher.get("n_jobs") or 1
        threads = cfg.get("threads")
        each = f", {threads} thread{'s' if threads != 1 else ''} each" if threads else ""
        minutes = self.wall_minutes()
        took = ""
        if minutes is not None:
            took = f", {minutes:.1f} min from the first job's start to the last job's end"
        return f"{at_once} job{'s' if at_once != 1 else ''} at a time{each}{took}"

    def run_dir(self, name: str) -> Path | None:
        row = self.job(name)
        return self.path / row["job"] if row else None

    def command(self) -> str:
        """The command line that ran the sweep, from Hydra's record of it."""
        cfg = collect.sweep_config(self.path)
        task = ((cfg.get("hydra") or {}).get("overrides") or {}).get("task") or []
        return " ".join(["python -m ae_lab", *task])

    def wall_minutes(self) -> float | None:
        """Minutes from the first job's start to the last job's end (file times: Hydra writes a
        job's ``.hydra/`` as it starts, ae_lab its record as it ends)."""
        starts = [p.stat().st_mtime for p in self.path.glob("*/.hydra/config.yaml")]
        ends = [p.stat().st_mtime for p in self.path.glob(f"*/{records.JOB_FILE}")]
        if not starts or not ends:
            return None
        return (max(ends) - min(starts)) / 60
