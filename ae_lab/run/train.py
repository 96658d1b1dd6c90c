"""The ``python -m ae_lab`` entrypoint: build everything from config, fit, test, record metrics.

``train(cfg)`` is the whole run, as the command line and tests call it: its life (skipped when
completed, begun, fit recorded, tested, completed or failed) is ``ae_lab.core.lifecycle``'s.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig

from ae_lab.config import location, resolvers, trained_run, validation
from ae_lab.core import lifecycle
from ae_lab.reporting import metrics as headline

if TYPE_CHECKING:
    import lightning as L

log = logging.getLogger(__name__)
# read before anything imports Lightning, which sets it (see use_default_cuda_check)
_USER_CUDA_CHECK = os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK")
# the configs as a folder, for code and tests that read them (ae_lab.config.location)
CONFIG_DIR = str(location.config_dir())

resolvers.register()
# Lightning's own use of a deprecated torch API; nothing a user can act on.
warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated")
# Hydra's, for conf/hydra/launcher/submitit_*.yaml, named as the plugin's schemas that still check
# their keys; nothing a user can act on.
warnings.filterwarnings("ignore", message="(?s).*is validated against ConfigStore schema")


def set_threads(n: int) -> None:
    """Caps torch's intra-op threads *and* the BLAS/OpenMP pools (NumPy, scikit-learn's PCA).

    Threads beyond the free cores do not just idle: they spin-wait on each other, and a small model
    or a PCA fit then runs several times slower. Parallel sweeps give each job its share this way.
    """
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(n)
    threadpool_limits(limits=n)


def run_threads(cfg: DictConfig) -> int:
    """``threads`` where set (the user's, or a sweep's per job); else the cores free to this
    process (``hardware.default_threads``, logged in one line), shared among the processes a
    multi-device run starts on this machine. torch's own default, one thread per core, takes
    cores other jobs are using and then runs several times slower than one thread."""
    if cfg.get("threads"):
        return int(cfg.threads)
    from ae_lab.core import hardware

    choice = hardware.default_threads()
    devices = cfg.get("trainer", {}).get("devices")
    processes = devices if isinstance(devices, int) and devices > 1 else 1
    threads = max(1, choice.threads // processes)
    log.info(choice.describe(threads, processes))
    return threads


def use_default_cuda_check() -> None:
    """Undoes, for a run on the CPU, the CUDA check Lightning switches on when imported.

    Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` so that asking whether CUDA is available
    does not initialise it before processes fork. torch's Adam asks on every ``step()``, and with
    that setting a CUDA build of torch without a GPU tries to load the NVIDIA management library
    each time: 40 us per check in isolation, about 200 us per step in a training loop here, a
    tenth of a small model's step (docs/benchmarks.md). A CPU run has chosen its device and starts
    no CUDA processes, so it goes back to torch's own check (2 us). A value the user set is kept.
    """
    if _USER_CUDA_CHECK is None:
        os.environ.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)


def add_callbacks(trainer: L.Trainer, callbacks: list[L.Callback]) -> None:
    """Adds callbacks to a built trainer ahead of its checkpoint callbacks, which Lightning keeps
    last so that they see what the others logged."""
    from lightning.pytorch.callbacks import Checkpoint

    existing = trainer.callbacks
    at = next((i for i, c in enumerate(existing) if isinstance(c, Checkpoint)), len(existing))
    existing[at:at] = callbacks


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Every entry of a config group that has a ``_target_`` (``callbacks``, ``logger``); an
    ``AeLabError`` that one raises as it is built (a file its settings name is missing) is raised
    as it is, not inside Hydra's ``InstantiationException``."""
    from hydra.errors import InstantiationException

    from ae_lab.core.errors import AeLabError

    if not group:
        return []
    built = []
    for c in group.values():
        if not (isinstance(c, DictConfig) and "_target_" in c):
            continue
        try:
            built.append(instantiate(c))
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
        return instantiate_group(group)
    from ae_lab.callbacks.loggers import LOGGER_PACKAGES

    loggers = []
    for c in group.values():
        if isinstance(c, DictConfig) and "_target_" in c:
            mlflow = LOGGER_PACKAGES.get(str(c._target_).rsplit(".", 1)[-1]) == "mlflow"
            loggers.append(instantiate(c, run_id=mlflow_run) if mlflow else instantiate(c))
    return loggers


def best_checkpoint(trainer: L.Trainer) -> str | None:
    """The file of the best model by a monitored metric (the callbacks group's ``ModelCheckpoint``),
    which the test evaluates; None, the final weights, where no callback monitors one."""
    monitored = (c for c in trainer.checkpoint_callbacks if getattr(c, "monitor", None))
    return next((c.best_model_path for c in monitored if c.best_model_path), None)


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    # the x-axis value of the epoch's metrics (ae_lab.callbacks.epoch_axis), not a metric
    from ae_lab.callbacks.epoch_axis import STEP

    return {k: float(v) for k, v in metrics.items() if hasattr(v, "__float__") and k != STEP}


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
    metrics = _floats(trainer.callback_metrics)
    best = best_checkpoint(trainer)
    own = checkpoints.last_checkpoint(trainer)
    last = str(own.file) if own is not None and own.file.is_file() else ""
    if life is not None and trainer.is_global_zero and (best or last):
        life.record_fit(metrics, Path(best or last))
    return metrics, best


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
        return _floats(self.trainer.callback_metrics)

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
    from ae_lab.reporting import run_end
    from ae_lab.run import resume
    from ae_lab.sweeps import slurm

    run_end.quiet_lightning()
    validation.check_trainer(cfg)  # before any data is read: Lightning would refuse it only then
    validation.check_environment(cfg)

    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    set_threads(run_threads(cfg))
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
        *instantiate_group(cfg.get("callbacks")),
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
        use_default_cuda_check()
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

    run = build(cfg)
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
    metrics = train(cfg)  # a run completed already (a sweep run again) is not run again
    metric = cfg.get("optimized_metric")
    return metrics.get(metric) if metric else None


if __name__ == "__main__":
    main()
