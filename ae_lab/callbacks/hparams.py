"""Hyperparameters with final metrics for a whole sweep, in every logger: one set of keys (in
TensorBoard, its HPARAMS tab)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

from ae_lab.callbacks.loggers import log_hyperparams

# final metrics shown beside the hyperparameters (those a run has; the downstream accuracies too)
METRICS = ("val/mse", "test/mse", "pca/test_mse", "test/nll", "val/acc", "test/acc")
RATIO = "test/mse_ratio"


class HParamsSummary(L.Callback):
    """Sends the run's hyperparameters with its final metrics to every logger once testing ends
    (``ae_lab.callbacks.loggers.log_hyperparams``: TensorBoard's HPARAMS tab, the CSV logger's
    ``hparams.yaml``, MLflow's params, W&B's config).

    Each model saves its own constructor arguments, so their keys differ between models and the
    HPARAMS table of a sweep falls apart into columns that only some runs fill. ``params`` is one
    flat mapping for every model (from the run's config), plus ``n_params``; the metrics are
    ``val/mse``, ``test/mse``, ``pca/test_mse``, ``test/mse_ratio`` (model over PCA, below 1
    when the model wins), and ``test/nll``, ``downstream/*`` and the classifier's accuracies
    where the run has them. The table and its parallel-coordinates view then line up every run
    of a sweep.
    """

    def __init__(self, params: Mapping[str, Any]) -> None:
        if isinstance(params, DictConfig):
            params = OmegaConf.to_container(params, resolve=True)
        self.params = _settings(params)
        self.fit_metrics: dict[str, float] = {}

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # testing replaces the callback metrics, and val/mse with them
        self.fit_metrics = _current(trainer)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        final = {**self.fit_metrics, **_current(trainer)}
        metrics = {k: v for k, v in final.items() if k in METRICS or k.startswith("downstream/")}
        if final.get("pca/test_mse"):
            metrics[RATIO] = final["test/mse"] / final["pca/test_mse"]
        params = {**self.params, "n_params": getattr(pl_module, "n_params", None)}
        log_hyperparams(trainer, params, metrics)


def _current(trainer: L.Trainer) -> dict[str, float]:
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


def _settings(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` without Hydra's ``_target_``-style keys, at any depth (a transform's config
    becomes its parameters: ``transform_params/p``)."""
    return {
        k: _settings(v) if isinstance(v, Mapping) else v
        for k, v in params.items()
        if not str(k).startswith("_")
    }
