"""How a run's figures and hyperparameters reach its loggers, whatever loggers the run has.

Every figure is written as a PNG under ``<run dir>/figures/`` first (by the first process only),
then handed to each of the run's loggers that takes pictures, through the function
``FIGURE_WRITERS`` holds for its class: TensorBoard's IMAGES tab, MLflow's run artifacts, W&B's
media. A logger without one (CSV) is skipped, and when no logger of the run takes pictures, one
line says where the PNGs are: no figure vanishes unseen. Pictures for another logger are one
function and one entry here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.utilities.logger import _convert_params, _flatten_dict
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.loggers import Logger, MLFlowLogger, TensorBoardLogger, WandbLogger
from matplotlib.figure import Figure
from PIL import Image
from torch.utils.tensorboard.summary import hparams as tb_hparams
from torchvision.utils import save_image

from ae_lab.callbacks.common import writes_files

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

# figure folders already named in the log by this process (one line each)
_announced: set[Path] = set()


def figure_writer(logger: Logger) -> FigureWriter | None:
    """How ``logger`` takes a picture, or None for a logger that takes none."""
    return next((w for kind, w in FIGURE_WRITERS.items() if isinstance(logger, kind)), None)


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
    settings (CSV: ``hparams.yaml``, MLflow: params, W&B: config)."""
    step = trainer.global_step
    new = {k: v for k, v in metrics.items() if k not in logged}
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            _tensorboard_hparams(logger, params, metrics, step)
        else:
            logger.log_hyperparams(dict(params))
        if new:
            logger.log_metrics(new, step=step)


@rank_zero_only
def _tensorboard_hparams(
    logger: TensorBoardLogger, params: Mapping[str, Any], metrics: Mapping[str, float], step: int
) -> None:
    """What Lightning's ``TensorBoardLogger.log_hyperparams(params, metrics)`` writes, without
    its logging the metrics a second time: ``hparams.yaml`` and the HPARAMS summaries, which name
    the metrics (their values are the run's scalars of those names). Integers are written as text,
    which the tab shows as they are (``latent 2``; a number it shows as ``2.0000``)."""
    logger.hparams.update(params)  # hparams.yaml, when the logger saves
    flat = logger._sanitize_params(_flatten_dict(_convert_params(dict(params))))
    shown = {
        k: str(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in flat.items()
    }
    writer = logger.experiment._get_file_writer()
    for summary in tb_hparams(shown, dict.fromkeys(metrics, 0.0)):
        writer.add_summary(summary, step)
