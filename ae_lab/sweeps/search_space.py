"""The part of the Optuna search space that depends on the model: its regulariser weight.

``hydra.sweeper.params`` is one fixed mapping for every model, but only some models have a
regulariser (the sparse and contractive penalties' ``weight``, the VAEs' KL ``beta``). The
Optuna sweeper calls this for every trial with the composed config, so the weight joins the
search exactly where the chosen model has one.
"""

from __future__ import annotations

from omegaconf import DictConfig

# model key -> (low, high, log scale)
REGULARIZERS = {
    "weight": (1e-5, 1e-2, True),
    "beta": (0.25, 4.0, False),
}


def regularizer(cfg: DictConfig, trial) -> None:  # noqa: ANN001 - an optuna.trial.Trial
    """Suggests ``model.<key>`` for the first regulariser key the model's config has."""
    for key, (low, high, log) in REGULARIZERS.items():
        if key in cfg.model:
            trial.suggest_float(f"model.{key}", low, high, log=log)
            return
