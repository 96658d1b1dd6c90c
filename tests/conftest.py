"""Shared fixtures and helpers: tiny synthetic MNIST files, the real MNIST, the entrypoint run in
this process (``run_in_process``, ``sweep_in_process``) or in a subprocess as a user runs it
(``run_ae_lab``), one tiny trained run a session (``trained_run``), one downstream classifier
cache a session (``classifier_cache``), composed configs, the model list, a quiet Trainer.

The entrypoint runs in this process wherever that shows what is tested: a run or a sequential
sweep, its config errors, its files, its console lines. A subprocess is for what only a process
shows: the console scripts themselves, signals and kills, parallel sweeps, DDP, submitit and
SLURM, the installed wheel.

Two kinds of tests, told apart by one marker:

- unit tests (no marker): synthetic files only (fixture ``synthetic_root``), in this process,
  the entrypoint's in-process runs and sweeps included. The guard below fails one that asks for
  the real MNIST (fixture ``mnist_root``, or an in-process run on it), starts the entrypoint in
  a subprocess (``run_ae_lab``, ``ae_lab_command`` or by hand) or reaches the network; while one
  runs, ``AE_LAB_DATA_DIR`` names an empty folder, so a config that falls back on it finds no
  data either. ``pytest -m "not integration"`` (``make test-fast``) thus runs offline, without
  the real MNIST and without starting the entrypoint, wherever it runs.
- integration tests (``pytest.mark.integration``): the real MNIST (in this process where it
  can be), or the entrypoint in a subprocess.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus, configure_log
from hydra.errors import HydraException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from ae_lab.config import hydra_errors
from ae_lab.core import hardware, locks
from ae_lab.core.errors import AeLabError, ConfigError
from ae_lab.run import process
from ae_lab.run.train import CONFIG_DIR
from ae_lab.sweeps import sweep_lock

if TYPE_CHECKING:
    import lightning as L
    import torch

# what the commands set up before they compose a config (importing ae_lab sets nothing): the
# configs' resolvers, which Hydra's compose API needs here too, and the warnings left out
process.setup()
# Hydra's plugins found now (0.1 s), before a test module imports one of them: Hydra's scan runs
# each plugin module again, and a class imported before the scan would not be the one it found
Plugins.instance()

REPO = Path(__file__).resolve().parents[1]
# where the real MNIST is, read before the guard hides it from unit tests
REAL_DATA = Path(os.environ.get("AE_LAB_DATA_DIR", REPO.parent / "shared" / "data")).resolve()
# the downstream classifier's cache, the user's cache folder by default: one of this session's,
# in this process and in every run it starts, so no test writes into ~/.cache
os.environ["AE_LAB_CACHE_DIR"] = tempfile.mkdtemp(prefix="ae_lab_cache_")


def _share_the_cores() -> None:
    """Each pytest-xdist worker takes its share of the cores, as a parallel sweep's job does:
    torch's default (a thread per core) in every worker, and in every run a worker starts,
    spin-waits against the other workers' threads. ``OMP_NUM_THREADS`` is how ae_lab's runs
    learn a share (``ae_lab/core/hardware.py``); tests of that choice set their own."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        share = max(1, hardware.usable_cores() // workers)
        os.environ["OMP_NUM_THREADS"] = str(share)
        process.set_threads(share)


_share_the_cores()


@pytest.fixture
def one_thread():
    """One torch thread for the test (``pytestmark = pytest.mark.usefixtures("one_thread")``):
    single-batch steps gain nothing from threads, and the suite shares its cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def options(group: str, config_dir: str | Path = CONFIG_DIR) -> tuple[str, ...]:
    """The options of a config group, ``conf/<group>/*.yaml``, sorted: what ``<group>=<option>``
    takes and ``--help`` lists (``ae_lab/config/help.py``). Tests that run every model, dataset,
    experiment, transform... read their list here, so a new YAML file is tested as it lands."""
    return tuple(sorted(p.stem for p in (Path(config_dir) / group).glob("*.yaml")))


def model_configs(config_dir: str | Path = CONFIG_DIR) -> dict[str, DictConfig]:
    """Every option of conf/model/ as Hydra composes it (its ``defaults`` list included)."""
    with initialize_config_dir(config_dir=str(Path(config_dir).absolute()), version_base="1.3"):
        return {name: compose(f"model/{name}").model for name in options("model", config_dir)}


def autoencoders(configs: dict[str, DictConfig]) -> tuple[str, ...]:
    """The models with a bottleneck, which take its size from ``latent``
    (``latent_dim: ${latent}``); the others (the classifier) have no code."""
    return tuple(name for name, cfg in configs.items() if "latent_dim" in cfg)


def _devices() -> tuple[str, ...]:
    import torch

    return ("cpu", *(("cuda",) if torch.cuda.is_available() else ()))


def _raw_names() -> dict[bool, tuple[str, str]]:
    from ae_lab.data.files import RAW_FILES  # the data package loads torch

    return RAW_FILES


# names the test modules import, made when first imported: pytest-xdist's controller process
# loads this file too, and runs no test; without torch, Lightning or a compose at import it
# starts the workers about 5 s sooner
_LAZY: dict[str, Callable[[], Any]] = {
    # the devices this machine has, for tests that must hold on each (CPU-only CI: the CPU alone)
    "DEVICES": _devices,
    # MNIST's file names (ae_lab.data.files), for tests that write or damage them
    "RAW_NAMES": _raw_names,
    "MODEL_CONFIGS": model_configs,
    "MODELS": lambda: tuple(__getattr__("MODEL_CONFIGS")),
    "AUTOENCODERS": lambda: autoencoders(__getattr__("MODEL_CONFIGS")),
    "CLASSIFIERS": lambda: tuple(
        name for name in __getattr__("MODELS") if name not in __getattr__("AUTOENCODERS")
    ),
}


def __getattr__(name: str) -> Any:
    """A lazy name's value, made once (the module's ``__getattr__``, PEP 562)."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in globals():
        globals()[name] = _LAZY[name]()
    return globals()[name]


def write_idx(path: Path, array: np.ndarray) -> None:
    """Writes an array in the IDX format of the MNIST files (big-endian sizes, uint8 data)."""
    magic = 0x0800 | array.ndim
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic))
        f.write(struct.pack(f">{array.ndim}I", *array.shape))
        f.write(array.astype(np.uint8).tobytes())


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Digit-like images: label k lights a bar at a k-dependent place, plus noise, so the
    classes are learnable and the images are not constant."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 40, (n, 28, 28))
    for i, k in enumerate(labels):
        images[i, 4 + 2 * k : 7 + 2 * k, 4:24] = 255
    return images.astype(np.uint8), labels.astype(np.uint8)


def write_mnist(
    root: Path, n_train: int = 600, n_test: int = 200, folder: str = "MNIST", seed: int = 1
) -> Path:
    """Synthetic training and test files under ``root/<folder>/raw``: torchvision's layout of
    MNIST, and of Fashion-MNIST (``folder="FashionMNIST"``) and KMNIST (``"KMNIST"``), whose files
    have MNIST's names and format; another ``seed``, other images."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for train, n, draw in ((True, n_train, seed), (False, n_test, seed + 1)):
        images, labels = synthetic_digits(n, draw)
        images_file, labels_file = _raw_names()[train]
        write_idx(raw / images_file, images)
        write_idx(raw / labels_file, labels)
    return root


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with 600 training and 200 test images in torchvision's MNIST layout."""
    return write_mnist(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """The real MNIST, for integration tests only: $AE_LAB_DATA_DIR, else ../shared/data beside
    the checkout."""
    if not (REAL_DATA / "MNIST" / "raw" / _raw_names()[True][0]).exists():
        pytest.fail(f"integration tests need the real MNIST under {REAL_DATA}/MNIST/raw")
    return REAL_DATA


def ae_lab_command(
    *overrides: str,
    data_root: Path,
    full_error: bool = True,
    entry: tuple[str, ...] = ("-m", "ae_lab"),
) -> dict:
    """``subprocess`` arguments for ``python -m ae_lab <overrides>`` with this checkout's package
    first on path; ``full_error=False`` shows what a user sees (no ``HYDRA_FULL_ERROR``);
    ``entry`` replaces ``-m ae_lab`` (e.g. with ``-c`` and the console script's code)."""
    env = {
        **{k: v for k, v in os.environ.items() if k != sweep_lock.ENV},
        "AE_LAB_DATA_DIR": str(data_root),
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "HYDRA_FULL_ERROR": "1" if full_error else "0",
    }
    return {
        "args": [sys.executable, *entry, *overrides],
        "env": env,
        "preexec_fn": interruptible,
    }


def interruptible() -> None:
    """Ctrl-C reaches the entrypoint as it reaches a user's: a suite started in the background
    (``make test &``) leaves SIGINT ignored, which its processes would inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_ae_lab(
    *overrides: str,
    cwd: Path,
    data_root: Path,
    check: bool = True,
    timeout: int = 600,
    full_error: bool = True,
    entry: tuple[str, ...] = ("-m", "ae_lab"),
) -> subprocess.CompletedProcess:
    """``python -m ae_lab <overrides>`` in ``cwd``, as a user would run it."""
    proc = subprocess.run(
        **ae_lab_command(*overrides, data_root=data_root, full_error=full_error, entry=entry),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"ae_lab {' '.join(overrides)} exited {proc.returncode}:\n{proc.stderr[-4000:]}"
        )
    return proc


# Tiny limits for entrypoint runs (conf/debug/tiny.yaml): enough to exercise fit, validation,
# test and every callback.
TINY = ("debug=tiny", "trainer.enable_progress_bar=false")
# TINY on one thread, without the evaluation callbacks or a logger: for runs that test a sweep
FAST = (*TINY, "threads=1", "callbacks=none", "logger=none")
# FAST's additions for a run that logs every training metric the default callbacks give it: the
# PCA baseline, a learning-rate monitor (and a logger for it), the best model by val/loss
WITH_TRAINING_METRICS = (
    "+callbacks.pca._target_=ae_lab.evaluation.PCABaseline",
    "+callbacks.lr._target_=lightning.pytorch.callbacks.LearningRateMonitor",
    "+callbacks.lr.logging_interval=epoch",
    "logger=csv",
    "+callbacks.best._target_=lightning.pytorch.callbacks.ModelCheckpoint",
    "+callbacks.best.dirpath=${hydra:runtime.output_dir}/checkpoints",
    "+callbacks.best.filename=best",
    "+callbacks.best.monitor=val/loss",
)
# what such a run's training logs, which a continued run must report as an unbroken one does
TRAINING_METRICS = {"val/mse", "val/loss", "train/loss", "pca/val_mse", "train/lr"}


@pytest.fixture(scope="session")
def classifier_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A ``cache_dir`` for ``DownstreamClassification`` shared by the session: its classifier
    for given data and settings is trained by the first test that needs it, then read from here.
    A test must not delete what it holds."""
    return str(tmp_path_factory.mktemp("classifier_cache"))


# what a run on the synthetic files (``synthetic_root``: 600 training images) needs beside TINY
SYNTHETIC = ("data.val_size=100", "data.batch_size=50")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, synthetic_root: Path) -> InProcessRun:
    """One tiny training run on the synthetic files (latent 4, no evaluation callbacks or
    logger), tested as training ends, for the tests that only read what it left: its
    ``checkpoints/``, ``.hydra/``, ``metrics.json`` and ``job.json``. Trained once a session,
    in this process; a test must not change its folder."""
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    overrides = ("latent=4", "callbacks=none", "logger=none", "threads=1", *TINY, *SYNTHETIC)
    return run_in_process(*overrides, run_dir=run_dir, data_root=synthetic_root)


def scalars(run_dir: Path) -> dict[str, list[float]]:
    """Every TensorBoard scalar under ``run_dir``, by tag, in step order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[float]] = {}
    for events in sorted(run_dir.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend(e.value for e in acc.Scalars(tag))
    return out


@pytest.fixture
def batch() -> dict[str, torch.Tensor]:
    """A fixed batch of 16 synthetic digits in the datamodule's format."""
    import torch

    images, labels = synthetic_digits(16, seed=3)
    x = torch.from_numpy(images).float().div(255).unsqueeze(1)
    return {"input": x, "target": x.clone(), "label": torch.from_numpy(labels).long()}


def quiet_trainer(**kwargs: Any) -> L.Trainer:
    """A one-device CPU Trainer that writes and shows nothing of its own (no logger, checkpoint,
    progress bar or model summary); ``kwargs`` add to those arguments or replace them. The
    evaluations among its ``callbacks`` run in one suite, as the entrypoint runs them."""
    import lightning as L

    from ae_lab.evaluation.suite import gather

    if "callbacks" in kwargs:
        kwargs["callbacks"] = gather(kwargs["callbacks"])
    quiet = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    return L.Trainer(**{**quiet, **kwargs})


def run_stage(
    evaluations: list[Any], trainer: Any, model: L.LightningModule, stage: str, *steps: tuple
) -> None:
    """One validation or test epoch of ``evaluations`` in a suite, as Lightning drives it, over
    ``steps``: ``(outputs, batch)`` pairs, the step's outputs and the batch, indexed from 0."""
    from ae_lab.evaluation.suite import EvaluationSuite

    suite = EvaluationSuite(evaluations)
    hook = {"val": "validation", "test": "test"}[stage]
    getattr(suite, f"on_{hook}_epoch_start")(trainer, model)
    for i, (outputs, batch) in enumerate(steps):
        getattr(suite, f"on_{hook}_batch_end")(trainer, model, outputs, batch, i)
    getattr(suite, f"on_{hook}_epoch_end")(trainer, model)


def evaluating() -> SimpleNamespace:
    """Stands in for a Trainer that validates or tests, as far as the datamodule asks one."""
    return SimpleNamespace(training=False)


# hydra.job.name as each command has it (the module of its hydra.main): its log is <name>.log
JOB_NAMES = {"config": "train", "eval": "evaluate"}


def compose_cfg(
    *overrides: str, run_dir: Path | str = "/tmp/ae_lab_run", config_name: str = "config"
) -> DictConfig:
    """The config that ``python -m ae_lab <overrides>`` runs with (``config_name="eval"``:
    ``ae-lab-eval``'s), Hydra's own node included, as the job in ``run_dir`` sees it:
    ``${hydra:...}`` resolves until the test ends."""
    job_name = JOB_NAMES.get(config_name, "app")
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3", job_name=job_name):
        cfg = compose(config_name, overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg.hydra.runtime):
        cfg.hydra.runtime.output_dir = str(run_dir)
    HydraConfig.instance().set_config(cfg)
    return cfg


@contextlib.contextmanager
def hydra_logging() -> Iterator[None]:
    """Lets Hydra set up logging as it does for a job (its console handler, ``<run>/train.log``)
    inside the block, then gives the root logger back its handlers and level (pytest's), and
    every logger its ``disabled`` flag: a library's logging setup during the run (a
    ``dictConfig``/``fileConfig`` that disables existing loggers) would otherwise silence
    ae_lab's loggers for the rest of the session."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    loggers = logging.Logger.manager.loggerDict
    disabled = {name: lg.disabled for name, lg in loggers.items() if isinstance(lg, logging.Logger)}
    try:
        yield
    finally:
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, logger in list(loggers.items()):
            if isinstance(logger, logging.Logger):
                logger.disabled = disabled.get(name, False)


@dataclass
class InProcessRun:
    """What ``run_in_process`` leaves: the exit status and console lines the command would end
    with, the task's return value (a training run's metrics), its run folder and config."""

    code: int
    out: str  # what the run printed on stdout, its log lines included (also in train.log)
    err: str  # ``ae_lab: <message>`` for a user's mistake, as the command prints it
    metrics: Any
    run_dir: Path | None  # None: Hydra refused the command line
    cfg: DictConfig | None  # None: Hydra refused the command line before a config was made

    @property
    def message(self) -> str:
        """The one line a user's mistake ends with, less ``ae_lab: ``."""
        lines = self.err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("ae_lab: "), self.err
        return lines[0].removeprefix("ae_lab: ")


def _write_hydra_files(cfg: DictConfig, task_cfg: DictConfig, run_dir: Path) -> None:
    """``<run dir>/.hydra/{config,hydra,overrides}.yaml``, as Hydra writes them for a job."""
    folder = run_dir / str(cfg.hydra.output_subdir)
    folder.mkdir(parents=True, exist_ok=True)
    hydra_cfg = OmegaConf.create({"hydra": cfg.hydra})
    for name, node in (("config", task_cfg), ("hydra", hydra_cfg)):
        OmegaConf.save(node, folder / f"{name}.yaml")
    OmegaConf.save(cfg.hydra.overrides.task, folder / "overrides.yaml")


def command_line(overrides: tuple[str, ...], config_name: str, multirun: bool) -> list[str]:
    """The overrides as the command hands them to Hydra (``ae_lab.run.cli.prepare_argv``; for
    ``ae-lab-eval``, the checkpoint's run overrides put in too)."""
    from ae_lab.run.cli import prepare_argv

    argv = prepare_argv([*(["--multirun"] if multirun else []), *overrides])
    if config_name == "eval":
        from ae_lab.run.evaluate import with_run_overrides

        argv = with_run_overrides(argv)
    argv = [a for a in argv if a != "--multirun"]
    if not any(a.startswith("hydra.mode=") for a in argv):  # as hydra.main adds it
        argv.append(f"hydra.mode={'MULTIRUN' if multirun else 'RUN'}")
    return argv


def run_in_process(
    *overrides: str,
    data_root: Path,
    run_dir: Path | None = None,
    check: bool = True,
    config_name: str = "config",
    task: Callable[[DictConfig], Any] | None = None,
) -> InProcessRun:
    """``ae-lab <overrides>`` (``config_name="eval"``: ``ae-lab-eval``) as one run in this
    process, into ``run_dir``, on the data under ``data_root``; what a user would see, without
    the ~15 s a process takes to import torch and Lightning.

    The steps of ``hydra.main`` for a run, each the project's own: the config composed with
    Hydra's node (``return_hydra_config=True``); ``run_dir`` (else a ``hydra.run.dir=`` among
    the overrides) as ``hydra.run.dir`` and ``hydra.runtime.output_dir``, set on
    ``HydraConfig``; every callback of ``hydra.callbacks`` called where Hydra calls it;
    ``.hydra/*.yaml`` written; Hydra's logging for the job (``hydra.job_logging``: its console
    lines in ``out``, ``train.log``; pytest's ``caplog`` sees none of them); ``task`` (default
    ``ae_lab.run.train.train``, the function the CLI calls; for ``eval``,
    ``ae_lab.run.evaluate.evaluate``) on the config without Hydra's node; an error turned into
    the console's one line and exit status as the entrypoint does
    (``ae_lab.config.hydra_errors``, the callbacks' ``on_run_end``).
    ``check``: an exit status other than 0 fails the test with what was printed.
    """
    if task is None:
        if config_name == "eval":
            from ae_lab.run.evaluate import evaluate as task
        else:
            from ae_lab.run.train import train as task
    guard_data(data_root)
    out, err = io.StringIO(), io.StringIO()
    code, metrics, cfg = 0, None, None
    env = pytest.MonkeyPatch()
    env.setenv("AE_LAB_DATA_DIR", str(data_root))
    env.delenv("HYDRA_FULL_ERROR", raising=False)  # a user's view: one line, no traceback
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), hydra_logging():
            try:
                args = command_line(overrides, config_name, multirun=False)
                if run_dir is not None:
                    args.append(f"hydra.run.dir={Path(run_dir).absolute()}")
                cfg = compose_cfg(*args, config_name=config_name)
                run_dir = Path(str(cfg.hydra.run.dir)).absolute()
                with read_write(cfg.hydra.runtime):
                    cfg.hydra.runtime.output_dir = str(run_dir)
                HydraConfig.instance().set_config(cfg)
                # as a user's run beside its run folder: not the checkout's .cache
                env.setenv("AE_LAB_CACHE_DIR", str(run_dir.parent / ".cache"))
            except AeLabError as error:  # ae-lab-eval's checkpoint, refused before Hydra
                print(f"ae_lab: {error}", file=sys.stderr)
                code = error.exit_code
            except HydraException as error:  # the command line, refused as the CLI refuses it
                message = hydra_errors.explain(error)
                if message is None:
                    raise
                print(f"ae_lab: {message}", file=sys.stderr)
                code = ConfigError.exit_code
            else:
                code, metrics = _run_job(cfg, task, run_dir)
    finally:
        env.undo()
    result = InProcessRun(code, out.getvalue(), err.getvalue(), metrics, run_dir, cfg)
    if check and code != 0:
        raise AssertionError(f"ae_lab {' '.join(overrides)} exited {code}:\n{result.err}")
    return result


def _run_job(cfg: DictConfig, task: Callable, run_dir: Path) -> tuple[int, Any]:
    """Hydra's ``run`` and ``run_job`` for one job: callbacks, files, the task, its failure."""
    callbacks = [instantiate(c) for c in (cfg.hydra.callbacks or {}).values()]
    job = JobReturn()
    try:
        for callback in callbacks:
            callback.on_run_start(config=cfg, config_name=None)
        task_cfg = copy.deepcopy(cfg)
        with read_write(task_cfg), open_dict(task_cfg):
            del task_cfg["hydra"]
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_hydra_files(cfg, task_cfg, run_dir)
        configure_log(cfg.hydra.job_logging, cfg.hydra.verbose)
        for callback in callbacks:
            callback.on_job_start(config=cfg, task_function=task)
        try:
            job.return_value, job.status = task(task_cfg), JobStatus.COMPLETED
        except Exception as error:  # noqa: BLE001 - Hydra's run_job keeps it for the callbacks
            job.return_value, job.status = error, JobStatus.FAILED
        for callback in callbacks:
            callback.on_job_end(config=cfg, job_return=job)
        for callback in callbacks:
            callback.on_run_end(config=cfg, config_name=None, job_return=job)
    except SystemExit as stop:  # a callback's exit_with or a completed run's exit 0
        return int(stop.code or 0), None
    return 0, job.return_value  # a bug (no callback turned it into a line) raises here


@dataclass
class InProcessSweep:
    """What ``sweep_in_process`` leaves: the sweep folder, what the sweeper returned, the exit
    status and console lines a callback ended the sweep with (``exit_with``), and the error a
    failed job ended it with (raised after the other jobs ran), if any."""

    sweep_dir: Path
    returned: Any
    code: int
    out: str  # what the sweep printed on stdout, its log lines included
    err: str
    error: BaseException | None


def sweep_in_process(
    *overrides: str,
    data_root: Path,
    sweep_dir: Path | None = None,
    check: bool = True,
    config_name: str = "config",
) -> InProcessSweep:
    """``ae-lab -m <overrides>`` (``config_name="eval"``: ``ae-lab-eval -m``) in this process, into
    ``sweep_dir`` (else a ``hydra.sweep.dir=`` among the overrides): Hydra's own multirun (its
    sweeper, the basic launcher running the jobs one after the other, every callback, each job's
    logging and ``train.log``) with the command's task; pytest's ``caplog`` sees none of its
    lines (``out`` has them). A parallel sweep needs processes: ``run_ae_lab``. ``check``: a
    failed job or an exit status other than 0 fails the test.
    """
    from hydra.core.global_hydra import GlobalHydra

    if config_name == "eval":
        from ae_lab.run.evaluate import _main as command
    else:
        from ae_lab.run.train import main as command
    task = command.__wrapped__  # the function hydra.main runs, as the command runs it
    guard_data(data_root)
    if sweep_dir is None:
        given = [o for o in overrides if o.startswith("hydra.sweep.dir=")]
        assert given, "sweep_in_process needs sweep_dir or a hydra.sweep.dir= override"
        sweep_dir = Path(given[-1].split("=", 1)[1].strip("'\""))
        overrides = tuple(o for o in overrides if o not in given)
    sweep_dir = Path(sweep_dir).absolute()
    env = pytest.MonkeyPatch()
    env.setenv("AE_LAB_DATA_DIR", str(data_root))
    env.setenv("AE_LAB_CACHE_DIR", str(sweep_dir.parent / ".cache"))
    env.delenv("HYDRA_FULL_ERROR", raising=False)
    env.delenv(sweep_lock.ENV, raising=False)  # the driver sets it for its jobs; undone below
    # what the sweep's process holds until it ends, however it ends (a failed job skips
    # on_multirun_end, which releases the sweep folder's lock): released here when it returns
    held: list[Any] = []
    hold = locks.hold
    env.setattr(locks, "hold", lambda *args: held.append(hold(*args)) or held[-1])
    returned, code, error, out, err = None, 0, None, io.StringIO(), io.StringIO()
    try:
        args = command_line(overrides, config_name, multirun=True)
        args += [f"hydra.sweep.dir={sweep_dir}"]
        with (
            initialize_config_dir(
                config_dir=CONFIG_DIR, version_base="1.3", job_name=JOB_NAMES[config_name]
            ),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
            hydra_logging(),
        ):
            hydra = GlobalHydra.instance().hydra
            try:
                returned = hydra.multirun(config_name, task, args)
            except SystemExit as stop:  # a callback's exit_with
                code = int(stop.code or 0)
            except Exception as failed:  # noqa: BLE001 - returned to the test, or raised by check
                if check:
                    raise
                error, code = failed, getattr(failed, "exit_code", 1)
    finally:
        env.undo()
        for handle in held:
            if handle is not None:
                handle.close()
        HydraConfig.instance().cfg = None
    if check and code != 0:
        raise AssertionError(f"ae_lab -m {' '.join(overrides)} exited {code}:\n{err.getvalue()}")
    return InProcessSweep(sweep_dir, returned, code, out.getvalue(), err.getvalue(), error)


@pytest.fixture(autouse=True)
def _no_hydra_config_left():
    """No test sees the Hydra config that ``compose_cfg`` set for an earlier one."""
    yield
    HydraConfig.instance().cfg = None


# ------------------------------------------------- the guard that keeps unit tests unit tests
# a command line that runs the entrypoint: ``python -m ae_lab``, the console script's code
# (``ae_lab.run.cli``), or the ``ae-lab`` script itself
ENTRYPOINT = re.compile(
    r"(^|\s)-m ae_lab(\.eval)?(\s|$)|\bae_lab\.run\.(cli|train|evaluate)\b"
    r"|(^|[\s/])ae-lab(-eval)?(\s|$)"
)
LOOPBACK = re.compile(r"localhost|127\.\d+\.\d+\.\d+|::1")


class UnitTestGuard:
    """Fails the unit test that runs now if it starts the entrypoint or reaches the network
    (through a Python audit hook, which sees every subprocess and socket however it is made),
    and hides the real MNIST from it behind ``AE_LAB_DATA_DIR``."""

    def __init__(self) -> None:
        self.test: str | None = None
        self.no_data = tempfile.mkdtemp(prefix="ae_lab_no_data_")
        self._env = pytest.MonkeyPatch()
        sys.addaudithook(self._audit)

    def start(self, item: pytest.Item) -> None:
        if item.get_closest_marker("integration") is not None:
            return
        if "mnist_root" in item.fixturenames:
            pytest.fail(f"{item.nodeid} uses the real MNIST: mark it integration", pytrace=False)
        self.test = item.nodeid
        self._env.setenv("AE_LAB_DATA_DIR", self.no_data)

    def check_data(self, root: Path) -> None:
        """Fails the unit test that runs the entrypoint in this process on the real MNIST."""
        if self.test is not None and Path(root).resolve() == REAL_DATA:
            self._fail(f"runs the entrypoint on the real MNIST ({root})")

    def stop(self) -> None:
        self.test = None
        self._env.undo()

    def close(self) -> None:
        shutil.rmtree(self.no_data, ignore_errors=True)

    def _audit(self, event: str, args: tuple) -> None:
        if self.test is None:
            return
        if event == "subprocess.Popen":
            argv = args[1] if isinstance(args[1], (list, tuple)) else [args[1]]
            command = " ".join(os.fsdecode(a) for a in argv)
            if ENTRYPOINT.search(command):
                self._fail(f"starts the entrypoint in a subprocess ({command[:200]})")
        elif event in ("socket.connect", "socket.getaddrinfo"):
            address = args[1] if event == "socket.connect" else args
            host = address[0] if isinstance(address, tuple) else None  # AF_UNIX: a path
            if isinstance(host, bytes):
                host = host.decode()
            if isinstance(host, str) and host and not LOOPBACK.fullmatch(host):
                self._fail(f"reaches the network ({host})")

    def _fail(self, what: str) -> None:
        # Failed is no Exception: neither a download's retries nor ``except Exception`` hide it
        pytest.fail(f"unit test {self.test} {what}: mark it integration", pytrace=False)


_GUARD = pytest.StashKey[UnitTestGuard]()
_GUARDS: list[UnitTestGuard | None] = [None]  # this session's, for the in-process entrypoint


def guard_data(root: Path) -> None:
    """The guard's check of an in-process run's data (``run_in_process``, ``sweep_in_process``)."""
    if _GUARDS[0] is not None:
        _GUARDS[0].check_data(root)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_GUARD] = _GUARDS[0] = UnitTestGuard()


def pytest_unconfigure(config: pytest.Config) -> None:
    config.stash[_GUARD].close()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.config.stash[_GUARD].start(item)  # before any fixture of the test is set up


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    item.config.stash[_GUARD].stop()  # after every fixture it leaves behind is torn down


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules with integration tests first, the rest after, each module's tests in their order.
    pytest-xdist (``--dist loadscope``) hands whole modules to its workers in this order, and the
    integration modules are the long ones (processes, the real MNIST): started first, they leave
    the many short unit modules to fill both workers at the end, instead of one worker waiting
    on the other's last long module."""
    long = {
        item.module.__name__
        for item in items
        if item.get_closest_marker("integration") is not None and item.module is not None
    }
    items.sort(key=lambda item: item.module is None or item.module.__name__ not in long)
