"""Sweeps on a Ray cluster (``hydra/launcher=ray``): each job a Ray task, as Hydra's own launchers
run theirs.

The sweep's process connects to Ray (``ray.init``): with no ``address`` it starts a cluster on this
machine, which ends with the sweep; with one it joins that cluster (``auto``: the one this machine
belongs to; ``host:port``; ``ray://host:10001`` through Ray Client). It composes each job's config
as every Hydra launcher does (``load_sweep_config``), and a task runs the job with Hydra's
``run_job``, so that a job's callbacks (its record, the sweep summary, the console lines), run dir
and logs are those of any other launcher. A task works in the folder the sweep was started from,
so the sweep folder and relative data paths mean the same on every node: a cluster of several
machines needs them on a file system all of them see, and ae_lab installed on each.

A job that fails is returned as failed, as Hydra's launchers return it; a task that Ray loses
(its worker killed, its node gone) is too, and its job's record still says running, so running
the sweep again continues it. When the sweep's process is stopped, its tasks are cancelled.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import (
    JobReturn,
    JobStatus,
    configure_log,
    filter_overrides,
    run_job,
    setup_globals,
)
from hydra.experimental.callback import Callback
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from ae_lab.core.errors import AeLabError, ConfigError, exit_with, full_error_wanted
from ae_lab.data import root as data_root

if TYPE_CHECKING:
    from hydra_plugins.ae_lab.ray_launcher import RayLauncher

log = logging.getLogger(__name__)
RAY_LAUNCHER = "hydra_plugins.ae_lab.ray_launcher.RayLauncher"
RAY_EXTRA = "ray"
# environment variables a job takes from the sweep's process, beside every AE_LAB_*
PASSED_ON = ("HYDRA_FULL_ERROR",)


def check_ray() -> None:
    """Raises ``ConfigError`` unless this Python can import Ray."""
    from importlib.util import find_spec

    if find_spec("ray") is None:
        raise ConfigError(
            "hydra/launcher=ray runs the sweep on Ray, which this Python lacks: "
            f"pip install 'ae_lab[{RAY_EXTRA}]' (or pip install ray)"
        )


class RequireRay(Callback):
    """Stops a sweep on Ray with one line when Ray is not installed, before the sweep folder is
    made (the launcher would only find out after)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if OmegaConf.select(config, "hydra.launcher._target_") != RAY_LAUNCHER:
            return
        try:
            check_ray()
        except AeLabError as err:
            if full_error_wanted():
                raise
            exit_with(str(err), err.exit_code)


def connect(launcher: RayLauncher) -> str:
    """Connects this process to the launcher's cluster, starting one here when it names none;
    returns where the jobs run, in words."""
    import ray

    if ray.is_initialized():
        return "the Ray cluster this process is connected to"
    settings: dict[str, Any] = {"logging_level": logging.WARNING, **launcher.init}
    if launcher.address:
        settings["address"] = launcher.address
        where = f"the Ray cluster at {launcher.address}"
    else:  # "local": a new cluster, even where `ray start` runs one that ray.init() would join
        settings.update({k: v for k, v in launcher.local.items() if v is not None})
        settings["address"] = "local"
        where = "a Ray cluster started on this machine"
    ray.init(**settings)
    return where


def task_options(remote: dict[str, Any]) -> dict[str, Any]:
    """``ray.remote``'s options for every job: the launcher's, with this process's ae_lab settings
    from the environment added to the task's (a worker of an existing cluster has the cluster's
    environment, not this one's), so that a job resolves its config as the sweep's process would:
    ``data.root``'s default as it is here, whether set, recorded by ``make setup`` or ``./data``."""
    ours = {k: v for k, v in os.environ.items() if k.startswith("AE_LAB_") or k in PASSED_ON}
    ours[data_root.ENV] = data_root.default_root()
    runtime_env = dict(remote.get("runtime_env") or {})
    runtime_env["env_vars"] = {**ours, **(runtime_env.get("env_vars") or {})}
    return {**remote, "runtime_env": runtime_env}


def sweep_job(
    hydra_context: HydraContext,
    sweep_config: DictConfig,
    task_function: TaskFunction,
    singleton_state: dict[Any, Any],
    cwd: str,
) -> JobReturn:
    """One job in a Ray worker, as Hydra's joblib launcher runs one in a loky worker."""
    setup_globals()
    Singleton.set_state(singleton_state)
    if os.path.isdir(cwd):  # relative paths (the sweep folder, data.root) as the sweep meant them
        os.chdir(cwd)
    HydraConfig.instance().set_config(sweep_config)
    return run_job(
        hydra_context=hydra_context,
        task_function=task_function,
        config=sweep_config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )


def lost(sweep_config: DictConfig, overrides: Sequence[str], err: Exception) -> JobReturn:
    """The return of a job whose task Ray lost: failed, with Ray's reason."""
    ret = JobReturn(overrides=list(overrides), status=JobStatus.FAILED, _return_value=err)
    ret.cfg, ret.hydra_cfg = sweep_config, sweep_config
    return ret


def launch(
    launcher: RayLauncher, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
) -> Sequence[JobReturn]:
    """Runs the jobs as Ray tasks, all at once (Ray queues those the cluster has no room for),
    and returns their results in order."""
    import ray

    setup_globals()
    config, context = launcher.config, launcher.hydra_context
    assert config is not None and context is not None and launcher.task_function is not None
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    sweep_dir = Path(str(config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    where = connect(launcher)
    log.info("Launching %d jobs on %s, sweep output dir: %s", len(job_overrides), where, sweep_dir)
    task = ray.remote(**task_options(launcher.remote))(sweep_job)
    state, cwd = Singleton.get_state(), os.getcwd()
    jobs = []
    for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
        log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
        sweep_config = context.config_loader.load_sweep_config(config, list(overrides))
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{idx}"
            sweep_config.hydra.job.num = idx
        ref = task.remote(context, sweep_config, launcher.task_function, state, cwd)
        jobs.append((ref, sweep_config, overrides))
    results = []
    try:
        for ref, sweep_config, overrides in jobs:
            try:
                results.append(ray.get(ref))
            except ray.exceptions.RayError as err:  # the task, not the job, failed
                log.error("a job's Ray task was lost (%s): %s", " ".join(overrides), err)
                results.append(lost(sweep_config, overrides, err))
    except BaseException:  # Ctrl-C, SIGTERM turned into an exception: the tasks stop too
        for ref, _, _ in jobs:
            with contextlib.suppress(Exception):  # a finished task cannot be cancelled
                ray.cancel(ref, force=True)
        raise
    return results
