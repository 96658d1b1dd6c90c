"""The ``python -m ae_lab`` entrypoint: build everything from config, fit, test, record metrics.

``train(cfg)`` is the whole run, as the command line and tests call it: its life (skipped when
completed, begun, fit recorded, tested, completed or failed) is ``ae_lab.core.lifecycle``'s.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from omegaconf import DictConfig

from ae_lab.config import location, validation
from ae_lab.core import lifecycle
from ae_lab.run import build, process

if TYPE_CHECKING:
    import lightning as L

log = logging.getLogger(__name__)
# the configs as a folder, for code and tests that read them (ae_lab.config.location)
CONFIG_DIR = str(location.config_dir())


def best_checkpoint(trainer: L.Trainer) -> str | None:
    """The file of the best model by a monitored metric (the callbacks group's ``ModelCheckpoint``),
    which the test evaluates; None, the final weights, where no callback monitors one."""
    monitored = (c for c in trainer.checkpoint_callbacks if getattr(c, "monitor", None))
    return next((c.best_model_path for c in monitored if c.best_model_path), None)


def _fit(
    cfg: DictConfig,
    trainer: L.Trainer,
    model: L.LightningModule,
    fit_model: Any,
    datamodule: L.LightningDataModule,
    life: lifecycle.Life | None,
) -> tuple[dict[str, float], str | None]:
    """Trains (resuming where ``ckpt_path`` says) and returns what training logged and the
    checkpoint to test, which the run's record keeps until the test has been recorded too. A
    run resumed from the checkpoint of its last epoch trains nothing: what that epoch logged
    comes from the checkpoint (``resume.ExactResume``)."""
    from ae_lab.core import checkpoints
    from ae_lab.run import resume

    ckpt_path = resume.checkpoint_to_resume(cfg.get("ckpt_path"), trainer, model)
    if ckpt_path:
        log.info("resuming from %s", ckpt_path)
    # read without running code from it: checkpoint_to_resume has read it the same way
    trainer.fit(fit_model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    metrics = build.floats(trainer.callback_metrics)
    best = best_checkpoint(trainer)
    own = checkpoints.last_checkpoint(trainer)
    last = str(own.file) if own is not None and own.file.is_file() else ""
    if life is not None and trainer.is_global_zero and (best or last):
        life.record_fit(metrics, Path(best or last))
    return metrics, best


def train(cfg: DictConfig) -> dict[str, float]:
    """One run: fit on the training split, then test on the official test set.

    Returns every logged metric's final value; they are also written to ``metrics.json`` in the
    run directory, which is what sweep summaries read. A run that is completed already is not
    run again (``ae_lab.core.lifecycle``).
    """
    return lifecycle.run(cfg, lambda life: _train(cfg, life))


def _train(cfg: DictConfig, life: lifecycle.Life | None) -> dict[str, float]:
    validation.check_config(cfg)
    start = time.perf_counter()
    from ae_lab.run import resume

    run = build.build(cfg)
    fitted = life.fitted() if life is not None else None
    with resume.stop_cleanly_on_interrupt(run.trainer):
        if fitted is None:
            metrics, test_ckpt = _fit(cfg, run.trainer, run.model, run.module, run.datamodule, life)
        else:  # stopped after training in an earlier attempt: its training metrics are kept
            metrics, test_ckpt = fitted[0], str(fitted[1])
            log.info("training finished in an earlier attempt; testing %s", test_ckpt)
        metrics.update(run.test(test_ckpt))
    # every attempt's time: a job continued after a stop took all of them
    earlier = life.earlier_wall_s() if life is not None else 0.0
    return run.finish(metrics, earlier + time.perf_counter() - start)


@hydra.main(version_base="1.3", config_path=location.config_path(), config_name="config")
def main(cfg: DictConfig) -> float | None:
    process.setup()  # in a launcher's fresh process too, where this is the first ae_lab code run
    metrics = train(cfg)  # a run completed already (a sweep run again) is not run again
    metric = cfg.get("optimized_metric")
    return metrics.get(metric) if metric else None


if __name__ == "__main__":
    process.setup()
    main()
