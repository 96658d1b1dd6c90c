"""A job's identity is its whole resolved configuration, not its folder name: ``job.json`` holds
that configuration and its hash (``identity``), written when the job starts (status ``running``)
and completed when it ends. A sweep run again trusts a folder's results only when its record says
completed *and* the identity is the new job's; otherwise the job runs (see ``ae_lab.sweeps.sweep``).

Left out of the identity, because they cannot change a run's results:

- ``ckpt_path``: where training continues from; a resumed run ends with the metrics of an unbroken
  one (``ae_lab.run.resume``), so the run that is continued and its continuation are the same job;
- ``DISPLAY_ONLY``: how much a run prints (progress bar, model summary, logging interval) and
  what a report preset shows beside it (``report``);
- the run directory's own path, written as ``<run dir>`` (checkpoint and logger folders), so a
  sweep folder that was moved or renamed still matches its jobs;
- ``OPTUNA_PRUNING``: an Optuna search's pruner and the callback that reports to it; a job it
  stops has no results, and one it lets finish has the results it would have had without it.

Every other key counts, including ``data.root``, ``threads`` and ``trainer.limit_*``: another
data file, thread count or number of batches can change the numbers.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

# Keys that change only what a run shows, never what it computes.
DISPLAY_ONLY = (
    "report",  # what a report preset's summary and results page show
    "trainer.enable_progress_bar",
    "trainer.enable_model_summary",
    "trainer.log_every_n_steps",
    "callbacks.progress_bar",
    "callbacks.model_summary",
)
# hparams_search=optuna's pruning (conf/hparams_search/optuna.yaml; ``hparams_search`` holds only
# its pruner), so a job's identity is what it was before the search had one
OPTUNA_PRUNING = ("hparams_search", "callbacks.optuna_pruning")
NOT_IN_IDENTITY = ("ckpt_path", *DISPLAY_ONLY, *OPTUNA_PRUNING)
RUN_DIR = "<run dir>"


def override_key(override: str) -> str:
    """``trainer.max_epochs`` for ``+trainer.max_epochs=3``, ``~callbacks.latent_map``, ..."""
    return override.lstrip("+~").split("=", 1)[0]


def under(key: str, prefixes: Iterable[str]) -> bool:
    """Whether ``key`` is one of ``prefixes`` or lies inside one (``callbacks.progress_bar.x``)."""
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def _in_run_dir(value: Any, run_dir: str) -> Any:
    """``value`` with a path in ``run_dir`` written as ``<run dir>/...``."""
    if isinstance(value, str) and (value == run_dir or value.startswith(run_dir + os.sep)):
        return RUN_DIR + value[len(run_dir) :]
    if isinstance(value, dict):
        return {k: _in_run_dir(v, run_dir) for k, v in value.items()}
    if isinstance(value, list):
        return [_in_run_dir(v, run_dir) for v in value]
    return value


def _drop(container: dict[str, Any], dotted: str) -> None:
    *parents, last = dotted.split(".")
    node: Any = container
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(last, None)


def identity(config: DictConfig, run_dir: str | Path) -> tuple[str, dict[str, Any]]:
    """The hash of a job's resolved configuration and that configuration (without ``hydra``,
    ``NOT_IN_IDENTITY`` and the run dir's path). Hydra's config must be current: the configs
    read ``${hydra:...}``."""
    task = copy.deepcopy(config)
    with read_write(task), open_dict(task):
        task.pop("hydra", None)
    resolved = OmegaConf.to_container(task, resolve=True)
    assert isinstance(resolved, dict)
    for key in NOT_IN_IDENTITY:
        _drop(resolved, key)
    resolved = _in_run_dir(resolved, str(run_dir))
    text = json.dumps(resolved, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16], resolved


def resolved_identity(config: DictConfig, run_dir: str | Path) -> tuple[str, dict[str, Any]] | None:
    """``identity``, or None when the config does not resolve (the run itself then says why)."""
    try:
        return identity(config, run_dir)
    except Exception:  # noqa: BLE001
        return None


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: value}


def changes(old: Mapping[str, Any] | None, new: Mapping[str, Any], shown: int = 3) -> str:
    """What differs between two recorded configurations, e.g. ``trainer.max_epochs: 2 -> 3``."""
    if old is None:
        return "the earlier run's record does not say which configuration it ran"
    before, after = _flatten(dict(old)), _flatten(dict(new))
    # the shallowest first: ``latent`` before the ``model.latent_dim`` it sets
    differ = (k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    keys = sorted(differ, key=lambda k: (k.count("."), k))
    if not keys:
        return "its recorded configuration hash differs"
    parts = [f"{k}: {before.get(k, '(absent)')} -> {after.get(k, '(absent)')}" for k in keys]
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return ", ".join(parts[:shown]) + more
