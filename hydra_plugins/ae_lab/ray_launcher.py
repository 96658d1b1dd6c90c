"""The launcher of ``hydra/launcher=ray``: every job of a sweep as a task on a Ray cluster.

Hydra instantiates a launcher only from a class under ``hydra_plugins`` that its plugin scan has
found, and the scan imports every module here on every start, so this module stays light: Ray
(an optional extra, ``pip install 'ae_lab[ray]'``) and the launch itself
(``ae_lab.sweeps.ray_launch``) load only when a sweep runs on Ray. Its settings are
``conf/hydra/launcher/ray.yaml``'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf


def _plain(value: Any) -> dict[str, Any]:
    """A mapping from the config as a plain dict (Ray's arguments), ``{}`` for none."""
    if isinstance(value, DictConfig):
        value = OmegaConf.to_container(value, resolve=True)
    return dict(value) if isinstance(value, Mapping) else {}


class RayLauncher(Launcher):
    """Runs each job of a sweep with ``ray.remote``: on a cluster started on this machine for the
    sweep (``address`` null), or on the existing one at ``address``."""

    def __init__(
        self,
        address: str | None = None,
        num_cpus: int | None = None,
        num_gpus: int | None = None,
        include_dashboard: bool = False,
        object_store_memory: int | None = None,
        remote: Mapping[str, Any] | None = None,
        init: Mapping[str, Any] | None = None,
    ) -> None:
        self.address = address
        # ray.init's arguments for a cluster started here (Ray refuses them for an existing one)
        self.local = {
            "num_cpus": num_cpus,
            "num_gpus": num_gpus,
            "include_dashboard": include_dashboard,
            "object_store_memory": object_store_memory,
        }
        self.remote = _plain(remote)
        self.init = _plain(init)
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        from ae_lab.run import process

        process.setup()  # as the ae-lab command does, for a sweep Hydra started otherwise
        self.config = config
        self.task_function = task_function
        self.hydra_context = hydra_context

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        from ae_lab.sweeps import ray_launch

        return ray_launch.launch(self, job_overrides, initial_job_idx)
