"""Pruning in the job of an Optuna trial: the job reports its validation metric after every epoch
to its trial, and stops with ``optuna.TrialPruned`` once the study's pruner finds it hopeless.

The search (``ae_lab.sweeps.optuna_search``) tells each job where its trial is through
environment variables set while the job runs (``optuna_trials.TRIAL_ENV``), so this works with
any launcher. The job loads the study from its storage with the pruner of its config
(``hparams_search.pruner``) and reports through optuna-integration's Lightning callback; a run
outside a search has no trial, and the callback does nothing.
"""

from __future__ import annotations

import os
from typing import Annotated

import lightning as L
import optuna
from annotated_types import doc
from optuna_integration import PyTorchLightningPruningCallback

from ae_lab.sweeps.optuna_trials import TRIAL_ENV, make_pruner


def current_trial(pruner: optuna.pruners.BasePruner) -> optuna.trial.Trial | None:
    """The trial this job runs, loaded from the study's storage; None outside a search."""
    number = os.environ.get(TRIAL_ENV["trial"])
    if number is None:
        return None
    name = os.environ[TRIAL_ENV["study"]]
    storage = optuna.storages.RDBStorage(os.environ[TRIAL_ENV["storage"]])
    study = optuna.load_study(study_name=name, storage=storage, pruner=pruner)
    study_id = storage.get_study_id_from_name(name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, int(number))
    return optuna.trial.Trial(study, trial_id)


class OptunaPruning(L.Callback):
    """Reports ``monitor`` to the job's trial after every validation and raises
    ``optuna.TrialPruned`` when the pruner says so; the search then records the trial, and the
    sweep the job, as pruned."""

    def __init__(
        self,
        monitor: Annotated[str, doc("a logged metric's name: optimized_metric")],
        pruner: optuna.pruners.BasePruner | str | None = None,
    ) -> None:
        self.monitor = monitor
        self.pruner = make_pruner(pruner)  # a name too: hparams_search.pruner=hyperband
        self.pruning: PyTorchLightningPruningCallback | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trial = current_trial(self.pruner)
        if trial is None:
            return
        self.pruning = PyTorchLightningPruningCallback(trial, self.monitor)
        self.pruning.on_fit_start(trainer, pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.pruning is not None:
            self.pruning.on_validation_end(trainer, pl_module)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Several processes (DDP) stop together and raise here, after training."""
        if self.pruning is not None:
            self.pruning.check_pruned()
