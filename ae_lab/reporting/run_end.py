"""What a run prints: each log line once, beside the progress bar rather than glued to it, no
adverts, and one block at the end that says what came out and where.

Hydra configures the root logger (conf/hydra/default.yaml, ``job_logging``), which prints to the
console and writes ``<run dir>/<job>.log``. Lightning adds its own console handler to the
``lightning`` logger when imported and lets records propagate to the root as well, so each of its
lines would be printed twice; ``quiet_lightning`` leaves them to the root's handlers alone.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ae_lab.reporting import metrics as headline
from ae_lab.reporting import mlflow_view

# Lightning's notes that say nothing about the run: its adverts for its cloud products, the note
# that a model summary callback is configured (conf/callbacks/default.yaml's model_summary) and
# the one-cycle schedule's count of steps
LIGHTNING_NOTES = (
    "💡 Tip:",
    "Trainer already configured with model summary callbacks",
    "Loading `train_dataloader` to estimate number of stepping batches",
)
# the loggers Lightning gives a handler of their own (lightning/__init__.py and its subpackages)
LIGHTNING_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric")
# where Lightning's rank_zero_info / rank_zero_warn lines come from
LIGHTNING_INFO = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


class ConsoleHandler(logging.StreamHandler):
    """A console handler that writes through ``tqdm.write`` while a progress bar is shown, which
    clears the bar, prints the line and redraws the bar below it."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        if not any(not getattr(bar, "disable", True) for bar in getattr(tqdm, "_instances", ())):
            super().emit(record)
            return
        try:
            if self.stream.isatty():
                tqdm.write(self.format(record), file=self.stream)
            else:  # a file or pipe (a SLURM log) cannot clear the bar: start a line after it
                self.stream.write("\n" + self.format(record) + self.terminator)
                self.flush()
        except Exception:  # noqa: BLE001 - logging must never end a run
            self.handleError(record)


class DropLightningNotes(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(LIGHTNING_NOTES)


def quiet_lightning() -> None:
    """Lightning's lines once (through the root's handlers, where Hydra configured them) and
    without its adverts. Call after importing Lightning, which adds its handlers on import."""
    if logging.getLogger().handlers:
        for name in LIGHTNING_LOGGERS:
            logger = logging.getLogger(name)
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.propagate = True
    for name in LIGHTNING_INFO:
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropLightningNotes) for f in logger.filters):
            logger.addFilter(DropLightningNotes())


# where TensorBoard opens the model-vs-PCA charts (ae_lab/callbacks/comparison.py); it opens
# on another tab by itself, and smooths every curve (0.6) unless the address says otherwise: a
# curve of a few epochs, smoothed, lags behind its points and crosses PCA's line too late
CUSTOM_SCALARS_URL = "http://localhost:6006/#custom_scalars&_smoothingWeight=0"
SQLITE = "sqlite:///"


def shown_path(path: Path | str) -> str:
    """A path as a command line takes it from any folder: absolute (not resolved: a venv's
    python is a symlink out of the venv), quoted for the shell where it needs it."""
    return shlex.quote(os.path.abspath(path))


def tool(script: str, module: str) -> str:
    """How to start a tool of this Python's environment from a fresh shell, venv activated or
    not: its console script beside this Python (``/path/.venv/bin/tensorboard``), else this
    Python running its module (``/path/.venv/bin/python -m tensorboard.main``)."""
    beside = Path(sys.executable).parent / script  # the venv's bin/, symlinks left as they are
    if beside.is_file():
        return shown_path(beside)
    return f"{shown_path(sys.executable)} -m {module}"


def tensorboard_command(logdir: Path | str) -> str:
    return f"{tool('tensorboard', 'tensorboard.main')} --logdir {shown_path(logdir)}"


def mlflow_command(tracking_uri: str) -> str:
    """``mlflow ui`` on a SQLite store; a tracking server is its address."""
    if not tracking_uri.startswith(SQLITE):
        return tracking_uri
    store = shown_path(tracking_uri[len(SQLITE) :])
    return f"{tool('mlflow', 'mlflow')} ui --backend-store-uri {SQLITE}{store}"


def where_to_look(loggers: Iterable[Any], run_dir: Path | None) -> list[str]:
    """One line per logger of the run that has something to look at, with the command that
    shows it: only the loggers the run used, each as it is configured."""
    from lightning.pytorch.loggers import CSVLogger, MLFlowLogger, TensorBoardLogger, WandbLogger

    lines = []
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            lines.append(f"curves and figures: {tensorboard_command(logger.log_dir)}")
            lines.append(f"model vs PCA: {CUSTOM_SCALARS_URL}")
        elif isinstance(logger, MLFlowLogger):
            uri = getattr(logger, "_tracking_uri", None) or ""
            if uri:
                lines.append(f"MLflow: {mlflow_command(uri)}")
            experiment = getattr(logger, "_experiment_id", None)  # without making one
            lines += mlflow_links(uri, experiment)
        elif isinstance(logger, WandbLogger):
            folder = Path(logger.save_dir or run_dir or ".") / "wandb"
            if getattr(logger, "_offline", False):
                runs = f"{shown_path(folder)}/offline-run-*"
                lines.append(f"W&B: {tool('wandb', 'wandb')} sync {runs}")
        elif isinstance(logger, CSVLogger):
            lines.append(f"metrics table: {shown_path(Path(logger.log_dir) / 'metrics.csv')}")
    return lines


def mlflow_links(tracking_uri: str, experiment_id: str | None) -> list[str]:
    """The experiment's runs and its model-vs-PCA chart in MLflow's UI, in its model-training
    view (``ae_lab.reporting.mlflow_view``): at ``mlflow ui``'s address for a SQLite store, at
    the server's for a tracking server; none for a store of another kind or no experiment."""
    if experiment_id is None:
        return []
    if tracking_uri.startswith(SQLITE):
        base = mlflow_view.MLFLOW_UI
    elif tracking_uri.startswith(("http://", "https://")):
        base = tracking_uri
    else:
        return []
    return [
        f"MLflow runs: {mlflow_view.runs_url(experiment_id, base)}",
        f"MLflow model vs PCA: {mlflow_view.chart_url(experiment_id, base)}",
    ]


def _stored_experiment(tracking_uri: str, name: str) -> str | None:
    """The id of experiment ``name`` in a SQLite store that exists (the jobs of a sweep made it),
    read without a server; None otherwise."""
    if not tracking_uri.startswith(SQLITE) or not Path(tracking_uri[len(SQLITE) :]).is_file():
        return None
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        experiment = MlflowClient(tracking_uri).get_experiment_by_name(name)
    except MlflowException:  # a store this MLflow cannot read: the command still opens it
        return None
    return experiment.experiment_id if experiment else None


def sweep_views(logger_configs: Mapping[str, Any] | None, sweep_dir: Path) -> list[str]:
    """``where_to_look`` for a whole sweep, from its ``logger`` group's configs (the jobs' own
    loggers are gone when it ends): TensorBoard on the sweep folder, MLflow on its store."""
    lines = []
    for config in (logger_configs or {}).values():
        if not isinstance(config, Mapping):
            continue
        target = str(config.get("_target_", "")).rsplit(".", 1)[-1]
        if target == "TensorBoardLogger":
            lines.append(f"curves: {tensorboard_command(sweep_dir)}")
            lines.append(f"model vs PCA: {CUSTOM_SCALARS_URL}")
        elif target in ("MLFlowLogger", "mlflow_logger"):
            uri = _tracking_uri(config)
            if uri:
                lines.append(f"MLflow: {mlflow_command(uri)}")
                name = str(config.get("experiment_name") or "ae_lab")
                lines += mlflow_links(uri, _stored_experiment(uri, name))
    return list(dict.fromkeys(lines))


def _tracking_uri(config: Any) -> str:
    """A logger config's ``tracking_uri``; once the sweep's jobs have ended, Hydra's
    ``${hydra:runtime.cwd}`` no longer resolves, and is the folder the sweep runs in."""
    from omegaconf import OmegaConf

    try:
        return str(config.get("tracking_uri") or "")
    except Exception:  # noqa: BLE001 - an interpolation only a job could resolve
        raw = str(OmegaConf.to_container(config, resolve=False).get("tracking_uri") or "")
        raw = raw.replace("${hydra:runtime.cwd}", os.getcwd())
        return "" if "${" in raw else raw


def run_end_block(
    values: Mapping[str, float],
    run_dir: Path | None,
    loggers: Iterable[Any] = (),
    heading: str = "run finished",
) -> str:
    """The headline metrics a run ends with, its folder and how to look at it in each of its
    ``loggers`` (``where_to_look``), under ``heading`` (an evaluation names the corruption it
    tested)."""
    shown = headline.select(values, headline.RUN_END)
    width = max((len(name) for name in shown), default=0)
    lines = [f"{heading}:"]
    for name, value in shown.items():
        metric = headline.find(name)
        text = metric.format(value) if metric else f"{value:.4g}"
        label = f"  {metric.label}" if metric else ""
        lines.append(f"  {name:<{width}}  {text:>10}{label}")
    if run_dir is not None:
        lines.append(f"  run folder: {shown_path(run_dir)}")
    lines += [f"  {line}" for line in where_to_look(loggers, run_dir)]
    return "\n".join(lines)
