"""A pruner that entrypoint tests of the Optuna search name in their overrides
(``hparams_search/pruner=none hparams_search.pruner._target_=tests.optuna_probes.<Class>``): it
decides by the trial's number, so which trials a search prunes is known in advance. Kept apart
from the test modules, which a job's process should not import."""

from __future__ import annotations

import optuna


class PruneAfterFirstTrial(optuna.pruners.BasePruner):
    """Prunes every trial but the first at its first report (after its first epoch)."""

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.number > 0
