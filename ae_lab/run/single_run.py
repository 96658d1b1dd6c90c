"""A Hydra callback for a single run (no ``-m``): how it starts and how it fails.

Kept apart from the sweep summary (``ae_lab.sweeps.sweep``) so that replacing or removing
``hydra.callbacks.sweep_summary`` leaves a plain run as it was:

- its folder is made up front, so one that cannot be made ends in one line
  (``ae_lab.core.run_dir``); the default ``outputs/<date>/<time>`` is claimed for this run
  alone, so that runs started in the same second get folders of their own (``<time>-1``, ...);
- a run that ``ae_lab.core.lifecycle`` would not start into its folder (a new training into a
  completed run: one line, exit 2; ``ckpt_path=last`` into a completed run: one line, exit 0)
  stops before Hydra writes anything there. The lifecycle decides the same again as the run
  starts, so the protection holds without this callback; here it also keeps the folder as it was;
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
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from ae_lab.core import earlier_run, records, run_dir
from ae_lab.core.errors import AeLabError, ConfigError, exit_with, full_error_wanted
from ae_lab.core.identity import override_key, resolved_identity


class SingleRun(Callback):
    """The start and the end of a single run; a sweep's jobs are ``ae_lab.sweeps.sweep``'s."""

    def __init__(self) -> None:
        self.made: Path | None = None  # the outermost folder this run made

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if chosen(config) or not records.rank_zero():
            if problem := run_dir.too_long(str(config.hydra.run.dir), "hydra.run.dir"):
                exit_with(problem, ConfigError.exit_code)
            if records.rank_zero():
                refuse_to_rewrite(config)
            self.made = run_dir.make(config.hydra.run.dir, "hydra.run.dir")
            return
        folder, self.made = run_dir.claim(str(config.hydra.run.dir), "hydra.run.dir")
        with read_write(config.hydra.run):
            config.hydra.run.dir = str(folder)  # what Hydra's run_job reads next

    def on_run_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        err = job_return._return_value
        if job_return.status != JobStatus.FAILED:
            return
        run_dir.remove_after_config_error(config, self.made, err)
        if isinstance(err, AeLabError) and not full_error_wanted():
            exit_with(str(err), err.exit_code)


def chosen(config: DictConfig) -> bool:
    """Whether the user gave ``hydra.run.dir`` on the command line (a folder to continue or to
    refuse), rather than taking the default, which each run claims for itself."""
    overrides = OmegaConf.select(config, "hydra.overrides.hydra", default=None) or []
    return any(override_key(str(o)) == "hydra.run.dir" for o in overrides)


def refuse_to_rewrite(config: DictConfig) -> None:
    """What ``earlier_run.decide`` says of the run dir, before Hydra writes into it: a completed
    run continued (``ckpt_path=last``): one line and exit 0; a new training into a completed run,
    or ``ckpt_path=last`` on a run of another configuration: one line and exit 2."""
    folder = Path(os.path.abspath(str(config.hydra.run.dir)))
    record, odd = records.inspect(folder)
    unwritten = record is not None and record.status == records.COMPLETED
    if record is None or odd or (unwritten and records.whole_metrics(folder) is None):
        return  # nothing to refuse, or something to repair: the lifecycle says which in the log
    current = copy.deepcopy(config)
    with read_write(current.hydra.runtime), open_dict(current.hydra.runtime):
        current.hydra.runtime.output_dir = str(folder)
    saved = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(current)
    try:
        found = resolved_identity(current, folder)
        done = earlier_run.decide(current, folder, found, multirun=False)
    except earlier_run.CompletedRunError as err:
        exit_with(str(err), err.exit_code)
    finally:
        HydraConfig.instance().cfg = saved
    if isinstance(done, dict):  # a completed run, said so: nothing to do
        raise SystemExit(0)
