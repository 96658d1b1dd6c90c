"""Sweeps on SLURM through submitit, and who owns a job's preemption there.

``hydra/launcher=submitit_slurm`` submits every job of a sweep with ``sbatch``. The generated
script asks SLURM for submitit's requeue signal (``#SBATCH --signal=USR2@<signal_delay_s>``;
``SUBMITIT_PREEMPT_SIGNAL`` names another), sent before the time limit and, where the cluster is
set up so, at preemption. Submitit owns what happens then: its handler in the job resubmits the
same job (``BaseSubmititLauncher.checkpoint``), calls ``scontrol requeue`` and exits; the requeued
job runs in the same run dir and, as every sweep job does, continues from its
``checkpoints/last.ckpt``, the end of its last finished epoch (``ae_lab.run.resume``).

Lightning has its own SLURM requeue (SIGUSR1: an ``hpc_ckpt_<n>.ckpt`` written mid-epoch, then
``scontrol requeue``), which Lightning prefers over any other checkpoint when the job restarts.
Two owners could requeue one job twice, and a mid-epoch checkpoint would break the exact resume,
so under submitit Lightning's is switched off (``trainer_plugins``).
"""

from __future__ import annotations

import os
import shutil
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from ae_lab.core.errors import AeLabError, exit_with, full_error_wanted

SLURM_COMMANDS = ("sbatch", "srun")
SLURM_LAUNCHER = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"


def check_slurm() -> None:
    """Raises ``AeLabError`` unless this machine has SLURM's commands to submit jobs with."""
    missing = [c for c in SLURM_COMMANDS if shutil.which(c) is None]
    if missing:
        raise AeLabError(
            f"hydra/launcher=submitit_slurm submits jobs with SLURM, but this machine has no "
            f"{' or '.join(missing)} on PATH (not a SLURM login node?). To try the sweep here, "
            "as local processes through the same code path: hydra/launcher=submitit_local"
        )


class RequireSlurm(Callback):
    """Stops a sweep whose launcher is SLURM's with one line when this machine has no SLURM,
    before anything is submitted (submitit's own error is a traceback)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if OmegaConf.select(config, "hydra.launcher._target_") != SLURM_LAUNCHER:
            return
        try:
            check_slurm()
        except AeLabError as err:
            if full_error_wanted():
                raise
            exit_with(str(err), err.exit_code)


def trainer_plugins(trainer_cfg: DictConfig) -> dict[str, Any]:
    """Trainer arguments for a job that submitit runs on SLURM: Lightning's SLURM environment
    without its own requeue (see the module's docstring). Nothing elsewhere, or when the trainer
    config names its own ``plugins``."""
    if os.environ.get("SUBMITIT_EXECUTOR") != "slurm" or "plugins" in trainer_cfg:
        return {}
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    return {"plugins": [SLURMEnvironment(auto_requeue=False)]}
