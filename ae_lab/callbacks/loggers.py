"""How a run's figures and hyperparameters reach its loggers, whatever loggers the run has.

Every figure is written as a PNG under ``<run dir>/figures/`` first (by the first process only),
then handed to each of the run's loggers that takes pictures: a Lightning logger through the
function ``FIGURE_WRITERS`` holds for its class (TensorBoard's IMAGES tab, MLflow's run
artifacts, W&B's media), a logger of one's own through its method ``log_png(tag, png, step)``
(``FIGURE_METHOD``). A logger with neither (CSV) is skipped, and when no logger of the run takes
pictures, one line says where the PNGs are: no figure vanishes unseen.

The run's final metrics go to each logger as ``FINAL_METRICS_WRITERS`` says, or its own method
``log_final_metrics(metrics, new, step)`` (``FINAL_METRICS_METHOD``). MLflow's and W&B's loggers
are built here too (``conf/logger/mlflow.yaml``, ``wandb.yaml``), for what sweeps need of them;
the package each logger needs is checked in ``ae_lab.callbacks.logger_packages``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Annotated, Any

import lightning as L
import numpy as np
import torch
from annotated_types import doc
from lightning.fabric.utilities.logger import _convert_params, _flatten_dict
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.loggers import Logger, MLFlowLogger, TensorBoardLogger, WandbLogger
from matplotlib.figure import Figure
from PIL import Image
from torch.utils.tensorboard.summary import hparams as tb_hparams
from torchvision.utils import save_image

from ae_lab.callbacks.common import writes_files
from ae_lab.callbacks.epoch_axis import STEP
from ae_lab.reporting.mlflow_view import (  # the tag's names, read here by callers too
    EXPERIMENT_KIND_TAG,  # noqa: F401
    MODEL_TRAINING,  # noqa: F401
    experiment_tags,
)

log = logging.getLogger(__name__)

FIGURES = "figures"


def _tensorboard(logger: TensorBoardLogger, tag: str, png: Path, step: int) -> None:
    pixels = np.asarray(Image.open(png).convert("RGB"))
    logger.experiment.add_image(tag, pixels, global_step=step, dataformats="HWC")


def _mlflow(logger: MLFlowLogger, tag: str, png: Path, step: int) -> None:
    # the run's artifacts get the figures/ folder the run dir has (the latest of each figure)
    logger.experiment.log_artifact(logger.run_id, str(png), artifact_path=FIGURES)


def _wandb(logger: WandbLogger, tag: str, png: Path, step: int) -> None:
    logger.log_image(key=tag, images=[str(png)], step=step)


# (logger, tag, PNG file, global step) -> the picture in that logger
FigureWriter = Callable[[Any, str, Path, int], None]
FIGURE_WRITERS: dict[type[Logger], FigureWriter] = {
    TensorBoardLogger: _tensorboard,
    MLFlowLogger: _mlflow,
    WandbLogger: _wandb,
}

# the method by which a logger of one's own takes a picture: (self, tag, PNG file, global step)
FIGURE_METHOD = "log_png"

# figure folders already named in the log by this process (one line each)
_announced: set[Path] = set()


def figure_writer(logger: Logger) -> FigureWriter | None:
    """How ``logger`` takes a picture, or None for a logger that takes none: its class's entry in
    ``FIGURE_WRITERS``, else its own ``log_png`` method."""
    found = next((w for kind, w in FIGURE_WRITERS.items() if isinstance(logger, kind)), None)
    return found or getattr(type(logger), FIGURE_METHOD, None)


def figure_dir(trainer: L.Trainer, output_dir: str | None = None) -> Path:
    """``<run dir>/figures``: the run dir is the trainer's ``default_root_dir`` (Hydra's output
    dir in ae_lab runs), so figures sit beside the run's metrics and event files."""
    path = Path(output_dir or trainer.default_root_dir) / FIGURES
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_figure(
    trainer: L.Trainer,
    tag: str,
    picture: Figure | torch.Tensor,
    output_dir: str | None = None,
) -> Path | None:
    """Writes ``picture`` (a matplotlib figure, or a (C, H, W) image in [0, 1] such as a
    ``make_grid``) to ``figures/<name>.png``, ``name`` the last part of ``tag``
    (``test/latent_map``: ``latent_map.png``), and hands it to every logger of the run that takes
    pictures, under ``tag`` at the trainer's global step. Returns the PNG's path; None on a
    process that writes no files (see ``writes_files``)."""
    if not writes_files(trainer):
        return None
    path = figure_dir(trainer, output_dir) / f"{tag.rsplit('/', 1)[-1]}.png"
    if isinstance(picture, Figure):
        picture.savefig(path)
    else:
        save_image(picture, path)
    shown = False
    for logger in trainer.loggers:
        writer = figure_writer(logger)
        if writer is not None:
            writer(logger, tag, path, trainer.global_step)
            shown = True
    if not shown and path.parent not in _announced:
        _announced.add(path.parent)
        names = ", ".join(type(lg).__name__ for lg in trainer.loggers) or "none"
        log.info(
            "figures are written as PNG files to %s (no logger of this run shows images; "
            "loggers: %s)",
            path.parent,
            names,
        )
    return path


def log_hyperparams(
    trainer: L.Trainer,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    logged: Collection[str] = (),
) -> None:
    """The run's hyperparameters with its final metrics, to every logger. ``logged`` names the
    metrics the run has already logged (its curves' last points); only the others (a ratio
    computed at the end) are logged here, once, at the last step, so that no curve gets a second
    final point. TensorBoard's HPARAMS tab pairs each run's settings with the metrics it names,
    whose values it reads from the run's own scalars; the other loggers take the settings as
    settings (CSV: ``hparams.yaml``, MLflow: params, W&B: config) and the final metrics as
    ``FINAL_METRICS_WRITERS`` says (W&B: all of them in its run summary)."""
    # at the step the run's last metrics were logged (the epoch axis, ae_lab.callbacks.epoch_axis)
    step = int(getattr(trainer, "logged_metrics", {}).get(STEP, trainer.global_step))
    new = {k: v for k, v in metrics.items() if k not in logged}
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            _tensorboard_hparams(logger, params, metrics, step)
            if new:
                logger.log_metrics(new, step=step)
            continue
        logger.log_hyperparams(dict(params))
        if metrics:
            final_metrics_writer(logger)(logger, dict(metrics), new, step)


def _wandb_final(
    logger: WandbLogger, metrics: dict[str, float], new: dict[str, float], step: int
) -> None:
    # W&B's summary is where a run's final values go: in its runs table, no point on any curve
    logger.experiment.summary.update(metrics)


def _at_last_step(
    logger: Logger, metrics: dict[str, float], new: dict[str, float], step: int
) -> None:
    # a logger shows a metric's latest value as the run's (MLflow, CSV): those the run already
    # logged (val/mse from the last epoch, test/mse) would only add a point to their curves
    if new:
        logger.log_metrics(new, step=step)


# (logger, final metrics, those of them the run has not logged yet, global step) -> the final
# metrics in that logger, beside its hyperparameters; a logger without an entry gets the new ones
# as values at the last step (MLflow, CSV)
FinalMetricsWriter = Callable[[Any, dict[str, float], dict[str, float], int], None]
FINAL_METRICS_WRITERS: dict[type[Logger], FinalMetricsWriter] = {WandbLogger: _wandb_final}
# the method by which a logger of one's own takes them: (self, metrics, new, global step)
FINAL_METRICS_METHOD = "log_final_metrics"


def final_metrics_writer(logger: Logger) -> FinalMetricsWriter:
    """How ``logger`` takes a run's final metrics (TensorBoard takes them with its HPARAMS): its
    class's entry in ``FINAL_METRICS_WRITERS``, else its own ``log_final_metrics`` method, else
    the new ones as values at the last step."""
    kinds = FINAL_METRICS_WRITERS.items()
    found = next((w for kind, w in kinds if isinstance(logger, kind)), None)
    return found or getattr(type(logger), FINAL_METRICS_METHOD, _at_last_step)


SQLITE = "sqlite:///"


def mlflow_logger(
    tracking_uri: Annotated[
        str | None,
        doc("where MLflow keeps its runs: sqlite:///<file>.db, file:<folder> or http://<server>"),
    ] = None,
    experiment_name: Annotated[str, doc("the MLflow experiment")] = "ae_lab",
    run_name: Annotated[str | None, doc("the run's name in MLflow")] = None,
    tags: Annotated[Mapping[str, Any] | None, doc("tag names to values")] = None,
    **kwargs: Any,
) -> MLFlowLogger:
    """Lightning's ``MLFlowLogger`` with its experiment and run made at once, the experiment
    tagged as model training with a chart view of the model against PCA (``_mark_model_training``).
    On a SQLite store, under a lock beside the file: the jobs of a parallel sweep start together,
    and two processes that create the store's tables, or its experiment, at the same time fail
    (alembic: ``Online migration expected to match one row``); the file's folder is made if
    missing."""

    def make() -> MLFlowLogger:
        names = {"experiment_name": experiment_name, "run_name": run_name, "tags": tags}
        logger = MLFlowLogger(tracking_uri=tracking_uri, **names, **kwargs)
        client = logger.experiment  # the experiment (made if missing) and the run, now
        _mark_model_training(client, logger.experiment_id)
        return logger

    if not (tracking_uri or "").startswith(SQLITE):
        return make()
    from filelock import FileLock

    db = Path(tracking_uri[len(SQLITE) :])
    db.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{db}.lock"):
        return make()


def _mark_model_training(client: Any, experiment_id: str) -> None:
    """Tags the experiment for MLflow's UI (``ae_lab.reporting.mlflow_view``): model training,
    unless a user chose another kind, and the shared chart view of the model against PCA."""
    present = client.get_experiment(experiment_id).tags
    for key, value in experiment_tags(present).items():
        client.set_experiment_tag(experiment_id, key, value)


class FailingWandbLogger(WandbLogger):
    """Lightning's ``WandbLogger``, which closes the W&B run of a job that failed as failed.
    Lightning tells every logger ``finalize("failed")`` when a fit or test raises, which its
    ``WandbLogger`` ignores; the run would stay open until the next job's logger or the end of
    the process closes it as finished."""

    @rank_zero_only
    def finalize(self, status: str) -> None:
        super().finalize(status)
        if status == "failed" and self._experiment is not None:
            self._experiment.finish(exit_code=1)


def wandb_logger(
    save_dir: str | Path = ".",
    offline: Annotated[bool, doc("true: no network; wandb sync uploads later")] = False,
    project: Annotated[str | None, doc("the W&B project")] = None,
    name: Annotated[str | None, doc("the run's name in W&B")] = None,
    **kwargs: Any,
) -> WandbLogger:
    """A ``FailingWandbLogger`` for a run of its own. The jobs of a sweep on the basic launcher
    share one process, where Lightning would go on logging into the W&B run the previous job left
    open (W&B closes its last run as the process exits): that one is closed first."""
    import wandb

    if wandb.run is not None:
        wandb.finish()
    return FailingWandbLogger(
        save_dir=save_dir, offline=offline, project=project, name=name, **kwargs
    )


@rank_zero_only
def _tensorboard_hparams(
    logger: TensorBoardLogger, params: Mapping[str, Any], metrics: Mapping[str, float], step: int
) -> None:
    """What Lightning's ``TensorBoardLogger.log_hyperparams(params, metrics)`` writes, without
    its logging the metrics a second time: ``hparams.yaml`` and the HPARAMS summaries, which name
    the metrics (their values are the run's scalars of those names). Numbers are written as
    numbers, so that the tab sorts and filters them as numbers (latent 2, 4, 16; as text: "16",
    "2", "4")."""
    logger.hparams.update(params)  # hparams.yaml, when the logger saves
    shown = logger._sanitize_params(_flatten_dict(_convert_params(dict(params))))
    writer = logger.experiment._get_file_writer()
    for summary in tb_hparams(shown, dict.fromkeys(metrics, 0.0)):
        writer.add_summary(summary, step)
