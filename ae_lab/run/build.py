"""What a run is made of, built from its config: data, model, callbacks, loggers and the trainer
(``build``), and the test and the last lines every run ends with (``Run``), for training
(``ae_lab.run.train``) and for testing alone (``ae_lab.run.evaluate``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from ae_lab.config import trained_run, validation
from ae_lab.core import lifecycle
from ae_lab.reporting import metrics as headline
from ae_lab.run import process

if TYPE_CHECKING:
    import lightning as L

log = logging.getLogger(__name__)


def add_callbacks(trainer: L.Trainer, callbacks: list[L.Callback]) -> None:
    """Adds callbacks to a built trainer ahead of its checkpoint callbacks, which Lightning keeps
    last so that they see what the others logged."""
    from lightning.pytorch.callbacks import Checkpoint

    existing = trainer.callbacks
    at = next((i for i, c in enumerate(existing) if isinstance(c, Checkpoint)), len(existing))
    existing[at:at] = callbacks


def instantiate_group(group: DictConfig | None) -> dict[str, Any]:
    """Every entry of a config group that has a ``_target_`` (``callbacks``, ``logger``), by key; an
    ``AeLabError`` that one raises as it is built (a file its settings name is missing) is raised
    as it is, not inside Hydra's ``InstantiationException``."""
    from hydra.errors import InstantiationException

    from ae_lab.core.errors import AeLabError

    if not group:
        return {}
    built = {}
    for key, c in group.items():
        if not (isinstance(c, DictConfig) and "_target_" in c):
            continue
        try:
            built[str(key)] = instantiate(c)
        except InstantiationException as err:
            if isinstance(err.__cause__, AeLabError):
                raise err.__cause__ from None
            raise
    return built


def instantiate_model(cfg: DictConfig) -> Any:
    """The model of ``cfg.model`` with the optimizer of ``cfg.optimizer``; an ``AeLabError`` one
    of its parts raises as it is built (sizes that do not fit together) is raised as it is."""
    from hydra.errors import InstantiationException

    from ae_lab.core.errors import AeLabError

    try:
        return instantiate(cfg.model, optimizer=instantiate(cfg.optimizer), _convert_="all")
    except InstantiationException as err:
        cause = err.__cause__
        while isinstance(cause, InstantiationException):  # a part inside the model
            cause = cause.__cause__
        if isinstance(cause, AeLabError):
            raise cause from None
        raise


def instantiate_loggers(group: DictConfig | None, mlflow_run: str | None) -> list[Any]:
    """The ``logger`` group's loggers; an MLflow logger goes on in ``mlflow_run``, the run an
    earlier attempt of this run logged to, so that a continued run leaves no other behind."""
    if not group or mlflow_run is None:
        return list(instantiate_group(group).values())
    from ae_lab.callbacks.logger_packages import LOGGER_PACKAGES

    loggers = []
    for c in group.values():
        if isinstance(c, DictConfig) and "_target_" in c:
            mlflow = LOGGER_PACKAGES.get(str(c._target_).rsplit(".", 1)[-1]) == "mlflow"
            loggers.append(instantiate(c, run_id=mlflow_run) if mlflow else instantiate(c))
    return loggers


def floats(metrics: dict[str, Any]) -> dict[str, float]:
    # the x-axis value of the epoch's metrics (ae_lab.callbacks.epoch_axis), not a metric
    from ae_lab.callbacks.epoch_axis import STEP

    return {k: float(v) for k, v in metrics.items() if hasattr(v, "__float__") and k != STEP}


@dataclass
class Run:
    """What a run builds from its config, for training and testing (``train``) or testing alone
    (``ae_lab.run.evaluate``)."""

    datamodule: L.LightningDataModule
    model: L.LightningModule
    module: Any  # what the trainer runs: the model, or its torch.compile'd twin
    trainer: L.Trainer
    test_callbacks: list[L.Callback]  # joined for the test only (TestStageCallback)
    out: Path | None  # the run directory, None outside a Hydra job

    def test(self, ckpt_path: str | None) -> dict[str, float]:
        """Tests the weights in ``ckpt_path`` (None: the module's own), with every test-time
        callback, and returns what the test logged. The checkpoint is loaded without running
        code from it (``weights_only``; ``ae_lab.core.checkpoints.load``)."""
        add_callbacks(self.trainer, self.test_callbacks)
        self.trainer.test(
            self.module,
            datamodule=self.datamodule,
            ckpt_path=ckpt_path,
            weights_only=True,
            verbose=False,  # no table of every test metric: run_end.run_end_block ends the run
        )
        return floats(self.trainer.callback_metrics)

    def finish(
        self, metrics: dict[str, float], wall_s: float, heading: str = "run finished"
    ) -> dict[str, float]:
        """``metrics`` with the run's time, size and the model/PCA ratio, summed up in the run's
        last lines under ``heading`` (``lifecycle`` writes them to ``metrics.json`` as the run
        completes)."""
        metrics = {**metrics, "time/wall_s": wall_s, "n_params": float(self.model.n_params)}
        metrics = headline.with_ratio(metrics)
        if self.trainer.is_global_zero:
            from ae_lab.reporting import run_end

            log.info(run_end.run_end_block(metrics, self.out, self.trainer.loggers, heading))
        return metrics


def build(cfg: DictConfig, training: bool = True) -> Run:
    """Everything a run is made of, built from ``cfg``: seeds and threads, data, model,
    callbacks, loggers and the trainer. ``training=False`` (a test alone) leaves out what only
    training needs: the checkpoints it writes."""
    # imported here so that config errors and --help answer without loading torch
    import lightning as L
    import torch
    from lightning.pytorch.accelerators import CPUAccelerator
    from lightning.pytorch.callbacks import Checkpoint, LearningRateMonitor, ProgressBar

    from ae_lab.callbacks.common import TestStageCallback
    from ae_lab.callbacks.epoch_axis import EpochAxis
    from ae_lab.callbacks.finite_loss import StopOnNonFiniteLoss
    from ae_lab.core import checkpoints
    from ae_lab.evaluation import suite
    from ae_lab.reporting import run_end
    from ae_lab.run import resume
    from ae_lab.sweeps import slurm

    run_end.quiet_lightning()
    validation.check_trainer(cfg)  # before any data is read: Lightning would refuse it only then
    validation.check_environment(cfg)

    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    process.set_threads(process.run_threads(cfg))
    if cfg.get("matmul_precision"):
        torch.set_float32_matmul_precision(cfg.matmul_precision)

    datamodule = instantiate(cfg.data, corruption=instantiate(cfg.transform))
    model = instantiate_model(cfg)
    model.scheduler_factory = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    model.noise_seed = int(cfg.seed) if cfg.get("seed") is not None else 0
    out = Path(HydraConfig.get().runtime.output_dir) if HydraConfig.initialized() else None
    # always on, whatever the callbacks group: exact resume (first: it puts back what a resumed
    # run's last epoch logged, for the others to see as the fit ends), the NaN stop, epochs on
    # x-axes
    callbacks = [
        resume.ExactResume(run=trained_run.describe(cfg)),
        *suite.gather(instantiate_group(cfg.get("callbacks"))),  # evaluations: in one suite
        StopOnNonFiniteLoss(),
        EpochAxis(),
    ]
    if not cfg.trainer.get("enable_progress_bar", True):  # Lightning refuses a bar it may not show
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    life = lifecycle.current()
    loggers = instantiate_loggers(cfg.get("logger"), life.mlflow_run() if life else None)
    if not loggers:  # and a learning-rate monitor with no logger to write to (logger=none)
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    if not (training and cfg.trainer.get("enable_checkpointing", True)):
        callbacks = [c for c in callbacks if not isinstance(c, Checkpoint)]  # nothing to save
    elif out is not None:  # the checkpoint resume reads, whatever the callbacks group
        checkpoints.add_last_checkpoint(callbacks, out)
    # test-time evaluation joins for the test only, so training steps don't dispatch to it
    test_callbacks = [c for c in callbacks if isinstance(c, TestStageCallback)]
    trainer = instantiate(
        cfg.trainer,
        callbacks=[c for c in callbacks if not isinstance(c, TestStageCallback)],
        logger=loggers or False,
        **({} if training else {"enable_checkpointing": False}),
        **slurm.trainer_plugins(cfg.trainer),  # under submitit, SLURM requeues are submitit's
    )
    checkpoints.use_atomic_writes(trainer)
    if isinstance(trainer.accelerator, CPUAccelerator):
        process.use_default_cuda_check()
    log.info(
        "%s: latent=%s, transform=%s, %s",
        type(model).__name__,
        model.latent_dim,
        datamodule.corruption,
        trainer.accelerator.__class__.__name__,
    )
    if life is not None and trainer.is_global_zero:  # the model says whether it has a bottleneck
        life.record_latent(model.latent_dim)
        life.record_loggers(loggers)
    module = torch.compile(model) if cfg.get("compile") else model
    return Run(datamodule, model, module, trainer, test_callbacks, out)
