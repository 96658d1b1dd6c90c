"""The sweeper of ``hparams_search=optuna``: an Optuna search on Optuna's public ask-and-tell API.

Hydra instantiates a sweeper only from a class under ``hydra_plugins`` that its plugin scan has
found, and the scan imports every module here on every start, so this module stays light: Optuna
and the search itself (``ae_lab.sweeps.optuna_search``) load only when a search is made.
"""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class OptunaSweeper(Sweeper):
    """Takes the settings under ``hydra.sweeper`` (conf/hparams_search/optuna.yaml); a search
    run again with its storage continues toward ``n_trials`` in all, retries the trials a stopped
    search left running, goes on past failed trials within ``max_failure_rate``, and records the
    trials its pruner stops as pruned."""

    def __init__(self, **settings: Any) -> None:
        from ae_lab.sweeps.optuna_search import OptunaSearch

        self.search = OptunaSearch(**settings)

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        from ae_lab.run import process

        process.setup()  # as the ae-lab command does, for a sweep Hydra started otherwise
        self.search.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        return self.search.sweep(arguments)
