"""A sweep folder's jobs as rows: one per job that Hydra started, with its overrides, status
(completed / failed / pruned / incomplete), what it is (model, transform, bottleneck, the preset's
job) and its final metrics, read from its records (``ae_lab.core.records``) and Hydra's files.

A sweep folder of an older ae_lab, whose jobs predate these records, is told apart by
``ae_lab.reporting.older`` rather than read here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ae_lab.core import records
from ae_lab.reporting import groups
from ae_lab.reporting import metrics as headline

# libyaml's safe loader where PyYAML was built with it (as its wheels are): as safe, and about
# eight times faster on the .hydra files each report reads for every job
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
INCOMPLETE = "incomplete"  # running now, stopped, or without a record that can be trusted


def job_dirs(sweep_dir: Path) -> list[Path]:
    """Job directories of a sweep: those Hydra wrote a ``.hydra/`` folder into."""
    return sorted(p.parent.parent for p in sweep_dir.glob("**/.hydra/overrides.yaml"))


def load_yaml(path: Path) -> Any:
    """The YAML in ``path`` (safe loader: nothing in it is executed); None when it is missing
    or damaged."""
    try:
        return yaml.load(path.read_text(), Loader=SAFE_LOADER)
    except (OSError, yaml.YAMLError):
        return None


def job_row(job_dir: Path, sweep_dir: Path) -> dict[str, Any]:
    """What one job did: overrides, status, settings, metrics."""
    metrics = headline.with_ratio(records.read_metrics(job_dir))
    found = records.read(job_dir)
    # no record that can be trusted (a job stopped before it began, a damaged job.json): the job
    # is not known to have completed
    record = found or records.JobRecord(INCOMPLETE)
    if found is not None and not records.whole_metrics(job_dir):  # metrics.json damaged
        metrics = headline.with_ratio(record.metrics or {})
        if not metrics and record.status == records.COMPLETED:
            record.status = INCOMPLETE  # not every phase is on disk: a re-run completes it
    overrides = load_yaml(job_dir / ".hydra" / "overrides.yaml") or []
    hydra_cfg = (load_yaml(job_dir / ".hydra" / "hydra.yaml") or {}).get("hydra", {})
    config = load_yaml(job_dir / ".hydra" / "config.yaml") or {}
    choices = hydra_cfg.get("runtime", {}).get("choices", {})
    row: dict[str, Any] = {
        "job": str(job_dir.relative_to(sweep_dir)),
        "overrides": " ".join(record.overrides or overrides),
        # a record that says running belongs to a job that runs now or was stopped
        "status": INCOMPLETE if record.status == records.RUNNING else record.status,
        "model": record.model or choices.get("model"),
        "transform": record.transform or choices.get("transform"),
        # the preset's job (experiment=report_course: course/deep_ae_64, ...), if any
        "report_job": choices.get("report_job"),
        # the model's bottleneck as its record says (None: it has none, as the classifier);
        # without a record, the config's
        "latent": found.latent if found is not None else config.get("latent"),
    }
    row.update(metrics)
    if "time/wall_s" not in metrics and record.wall_s is not None:  # a failed job's time
        row["time/wall_s"] = record.wall_s
    if record.error:
        row["error"] = record.error
    return row


def collect(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """Every job's row, in numeric order of the overrides (``latent=2`` before ``latent=32``)."""
    sweep_dir = Path(sweep_dir)
    return list(groups.sort_jobs(job_row(d, sweep_dir) for d in job_dirs(sweep_dir)))


def declared(config: dict[str, Any] | None) -> dict[str, Any]:
    """What a sweep's config declares for its reports (``report``: reference figures, the keys
    its summary averages over, and the results page's title and figures)."""
    return dict((config or {}).get("report") or {})


def sweep_config(sweep_dir: Path) -> dict[str, Any]:
    """The sweep's configuration as Hydra recorded it (``multirun.yaml``); {} without one."""
    found = load_yaml(sweep_dir / "multirun.yaml")
    return found if isinstance(found, dict) else {}


def sweep_reference(sweep_dir: Path) -> list[dict[str, Any]]:
    """Reference figures the config of the sweep in ``sweep_dir`` names."""
    return list(declared(sweep_config(sweep_dir)).get("reference") or [])


def sweep_average_over(sweep_dir: Path) -> tuple[str, ...]:
    """The keys the sweep's report averages over (``report.average_over``; default: seed)."""
    keys = declared(sweep_config(sweep_dir)).get("average_over")
    return tuple(keys) if keys else groups.AVERAGE_OVER
