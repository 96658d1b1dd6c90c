"""What a run prints: each log line once, beside the progress bar rather than glued to it, no
adverts, and one block at the end that says what came out and where.

Hydra configures the root logger (conf/hydra/default.yaml, ``job_logging``), which prints to the
console and writes ``<run dir>/<job>.log``. Lightning adds its own console handler to the
``lightning`` logger when imported and lets records propagate to the root as well, so each of its
lines would be printed twice; ``quiet_lightning`` leaves them to the root's handlers alone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from ae_lab.reporting import metrics as headline

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


def run_end_block(
    values: Mapping[str, float], run_dir: Path | None, heading: str = "run finished"
) -> str:
    """The headline metrics a run ends with, its folder and how to look at it in TensorBoard,
    under ``heading`` (an evaluation names the corruption it tested)."""
    shown = headline.select(values, headline.RUN_END)
    width = max((len(name) for name in shown), default=0)
    lines = [f"{heading}:"]
    for name, value in shown.items():
        metric = headline.find(name)
        text = metric.format(value) if metric else f"{value:.4g}"
        label = f"  {metric.label}" if metric else ""
        lines.append(f"  {name:<{width}}  {text:>10}{label}")
    if run_dir is not None:
        lines.append(f"  run folder: {run_dir}")
        lines.append(f"  curves and figures: tensorboard --logdir {run_dir}")
        # the model-vs-PCA charts (ae_lab/callbacks/comparison.py); TensorBoard opens elsewhere
        lines.append("  model vs PCA: http://localhost:6006/#custom_scalars")
    return "\n".join(lines)
