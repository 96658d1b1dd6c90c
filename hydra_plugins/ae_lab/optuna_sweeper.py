"""The Optuna sweeper of ``hparams_search=optuna``: Hydra's, continued by a re-run.

Hydra instantiates a sweeper only from a class under ``hydra_plugins`` that its plugin scan
has found, and the scan imports every module here on every start, so this module stays light:
optuna and the search itself (``ae_lab.sweeps.optuna_search``) load only when a search is made.
"""

from __future__ import annotations

from typing import Any

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper


class ContinuingOptunaSweeper(OptunaSweeper):
    """Takes the settings of Hydra's Optuna sweeper (``hydra/sweeper=optuna``); a search run
    again with its storage continues toward ``n_trials`` in all, retries the trials a stopped
    search left running, and goes on past failed trials within ``max_failure_rate``."""

    def __init__(self, **settings: Any) -> None:
        from ae_lab.sweeps.optuna_search import ContinuingSearch

        self.sweeper = ContinuingSearch(**settings)
