"""The run's hyperparameters, assembled and logged in one place, with its headline metrics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import lightning as L
from annotated_types import doc
from omegaconf import DictConfig, OmegaConf

from ae_lab.callbacks.loggers import log_hyperparams
from ae_lab.reporting import metrics as headline


class HParamsSummary(L.Callback):
    """Logs the run's hyperparameters to every logger as the run starts, and sends them with its
    final headline metrics to every logger once testing ends
    (``ae_lab.callbacks.loggers.log_hyperparams``: TensorBoard's HPARAMS tab, the CSV logger's
    ``hparams.yaml``, MLflow's params, W&B's config).

    Each model saves its own constructor arguments (Lightning logs them and keeps them in its
    checkpoints), so their keys differ between models and an HPARAMS table of those falls apart into
    columns that only some runs fill. ``hyperparameters`` is one flat mapping for every model
    (``params``, from the run's config) plus ``n_params``; the metrics are those
    ``ae_lab.reporting.metrics`` shows beside hyperparameters that the run has (``test/mse_ratio``:
    model over PCA, below 1 when the model wins). The table and its parallel-coordinates view then
    line up every run of a sweep.
    """

    def __init__(
        self,
        params: Annotated[Mapping[str, Any], doc("names to values: TensorBoard's HPARAMS tab")],
    ) -> None:
        if isinstance(params, DictConfig):
            params = OmegaConf.to_container(params, resolve=True)
        self.params = _settings(params)
        self.fit_metrics: dict[str, float] = {}

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # before Lightning's own hyperparameters, so hparams.yaml has these too
        for lg in trainer.loggers:
            lg.log_hyperparams(hyperparameters(self.params, pl_module))

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # testing replaces the callback metrics, and val/mse with them
        self.fit_metrics = _current(trainer)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        final = {**self.fit_metrics, **_current(trainer)}
        metrics = headline.select(final, headline.HPARAMS)
        # the callback metrics reached the loggers as they were logged: only the ratio is new
        log_hyperparams(trainer, hyperparameters(self.params, pl_module), metrics, set(final))


def hyperparameters(params: Mapping[str, Any], pl_module: L.LightningModule) -> dict[str, Any]:
    """What every logger gets as the run's hyperparameters: ``params`` and the model's size."""
    return {**params, "n_params": getattr(pl_module, "n_params", None)}


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
