"""A Hydra callback for a single run (no ``-m``): how it starts and how it fails.

Kept apart from the sweep summary (``ae_lab.sweeps.sweep``) so that replacing or removing
``hydra.callbacks.sweep_summary`` leaves a plain run as it was:

- its folder is made up front, so one that cannot be made ends in one line (``ae_lab.run.run_dir``);
- ``ckpt_path=last`` into a folder whose record says completed ends with one line and exit 0,
  every file as it was; into a run of another configuration, one line and exit 2. Both are
  decided before Hydra writes anything into the folder;
- an ``AeLabError`` ends the run with its message alone (``HYDRA_FULL_ERROR=1``: the traceback),
  and a config error leaves no folder behind.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict, read_write

from ae_lab.reporting import records
from ae_lab.reporting.identity import changes, resolved_identity
from ae_lab.run import run_dir
from ae_lab.run.errors import AeLabError, exit_with, full_error_wanted


class SingleRun(Callback):
    """The start and the end of a single run; a sweep's jobs are ``ae_lab.sweeps.sweep``'s."""

    def __init__(self) -> None:
        self.made: Path | None = None  # the outermost folder this run made

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.get("ckpt_path") == "last" and records.rank_zero():
            refuse_to_resume_another(config)
        self.made = run_dir.make(config.hydra.run.dir, "hydra.run.dir")

    def on_run_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        err = job_return._return_value
        if job_return.status != JobStatus.FAILED:
            return
        run_dir.remove_after_config_error(config, self.made, err)
        if isinstance(err, AeLabError) and not full_error_wanted():
            exit_with(str(err), err.exit_code)


def refuse_to_resume_another(config: DictConfig) -> None:
    """``ckpt_path=last`` on a run dir whose record says completed: one line and exit 0; on a run
    of another configuration: one line and exit 2."""
    folder = os.path.abspath(str(config.hydra.run.dir))
    earlier = records.read(Path(folder))
    if earlier is None or earlier.identity is None:  # nothing to check against
        return
    current = copy.deepcopy(config)
    with read_write(current.hydra.runtime), open_dict(current.hydra.runtime):
        current.hydra.runtime.output_dir = folder
    saved = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(current)
    try:
        found = resolved_identity(current, folder)
    finally:
        HydraConfig.instance().cfg = saved
    if found is None:
        return
    if earlier.matches(found[0]) and earlier.status == records.COMPLETED:
        print(
            f"ae_lab: {folder} is a completed run, nothing to resume; its metrics are in "
            f"{Path(folder) / records.METRICS_FILE}",
            flush=True,
        )
        raise SystemExit(0)
    if not earlier.matches(found[0]):
        what = "a completed run" if earlier.status == records.COMPLETED else "a run"
        exit_with(
            f"ckpt_path=last: {folder} holds {what} of another configuration "
            f"({changes(earlier.config, found[1])}). Continue it with the "
            "settings it ran with, or give a new hydra.run.dir",
            2,
        )
