"""The ``ae-lab-eval`` command (and ``python -m ae_lab.eval``): a trained model tested again.

``ae-lab-eval ckpt_path=<run>/checkpoints/best.ckpt transform=mask transform.p=0.5`` tests the
checkpoint's model under a corruption it may not have been trained on, exactly as training ends:
``trainer.test`` with every test-time callback of the ``callbacks`` group, PCA with as many
components fitted on the same training split, ``metrics.json``, ``job.json`` and the loggers'
output in a run folder of its own. ``-m transform=none,gaussian,mask`` makes it a sweep, with the
sweep's summary, like any other.

The model is the checkpoint's: its run folder's ``.hydra/overrides.yaml`` (beside
``checkpoints/``) says how the run was composed, and those overrides are put on the command line
ahead of the user's, so the user types only what changes. Left out are the ones that say how a
run is carried out rather than what model and data it has (``EVAL_SETUP``: the callbacks, loggers,
trainer and Hydra settings, which come from ``conf/eval.yaml`` and the command line) and every one
the user gives again. The checkpoint is then checked against the model built (class, latent size,
weight shapes) and read as weights only (``ae_lab.run.checkpoints.load``).
"""

from __future__ import annotations

import logging
import re
import sys
import time
from pathlib import Path

import hydra
import yaml
from omegaconf import DictConfig

from ae_lab.config import location, validation
from ae_lab.reporting.identity import override_key, under
from ae_lab.run import lifecycle, train
from ae_lab.run.cli import exit_promptly, prepare_argv
from ae_lab.run.errors import AeLabError, exit_with

log = logging.getLogger(__name__)
CKPT = re.compile(r"\+{0,2}ckpt_path=(?P<path>.*)")
# the checkpoint's run folder holds Hydra's record of how it was composed here
RUN_OVERRIDES = Path(".hydra") / "overrides.yaml"
# a training run's overrides that say how it was carried out, not what it trained: the
# evaluation takes these from conf/eval.yaml and its own command line
EVAL_SETUP = (
    "hydra",
    "ckpt_path",
    "callbacks",
    "logger",
    "trainer",
    "accelerator",
    "threads",
    "compile",
    "matmul_precision",
    "hparams_search",
    "optimized_metric",
)
# flags that print something and run nothing, so need no checkpoint
INFO_FLAGS = ("-h", "--help", "--hydra-help", "-c", "--cfg", "-i", "--info", "--version")


def run_folder(ckpt: str) -> Path:
    """The run folder of the checkpoint ``ckpt`` (``<run>/checkpoints/<name>.ckpt``); raises
    unless the file is there and the folder is an ae_lab run's."""
    path = Path(ckpt.strip("'\"")).expanduser()
    if not path.is_file():
        raise AeLabError(
            f"ckpt_path={ckpt}: no such file. Give a trained run's checkpoint, e.g. "
            "outputs/<date>/<time>/checkpoints/best.ckpt"
        )
    run = path.resolve().parent.parent
    if not (run / RUN_OVERRIDES).is_file():
        raise AeLabError(
            f"ckpt_path={ckpt} is not in an ae_lab run's folder: there is no {RUN_OVERRIDES} "
            "beside its checkpoints/ folder to say which model it is. Give the checkpoint where "
            "its run wrote it"
        )
    return run


def run_overrides(run: Path, given: list[str]) -> list[str]:
    """The overrides ``run`` was composed with, less ``EVAL_SETUP`` and those the user gives
    again (``transform=mask`` replaces the run's ``transform`` and every ``transform.*``)."""
    overrides = yaml.safe_load((run / RUN_OVERRIDES).read_text()) or []
    mine = [override_key(o).replace("/", ".") for o in given if "=" in o]
    return [
        o for o in overrides if not under(override_key(o).replace("/", "."), (*EVAL_SETUP, *mine))
    ]


def with_run_overrides(argv: list[str]) -> list[str]:
    """``argv`` with the checkpoint's run overrides put just before ``ckpt_path=``, so that
    Hydra composes the model the checkpoint holds and then the user's changes."""
    at = next((i for i, a in enumerate(argv) if CKPT.fullmatch(a)), None)
    if at is None:
        if not any(a in INFO_FLAGS for a in argv):
            raise AeLabError(
                "ckpt_path is required: the checkpoint to evaluate, e.g. "
                "ckpt_path=outputs/<date>/<time>/checkpoints/best.ckpt"
            )
        return argv
    ckpt = CKPT.fullmatch(argv[at])["path"]
    if "," in ckpt:
        raise AeLabError(
            f"ckpt_path={ckpt}: one checkpoint per command (each has its own model); "
            "sweep over the corruption instead, e.g. -m transform=none,gaussian,mask"
        )
    given = [a for a in argv if not a.startswith("-")]
    replayed = run_overrides(run_folder(ckpt), given)
    if "--multirun" not in argv:  # a replayed preset may make a sweep; one run was asked for
        replayed.append("hydra.mode=RUN")
    return [*argv[:at], *replayed, *argv[at:]]


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Tests the checkpoint ``cfg.ckpt_path`` as the run ``cfg`` describes, and returns (and
    records) every metric the test logged."""
    if not cfg.get("ckpt_path"):  # given on the command line: with_run_overrides says so
        raise AeLabError("ckpt_path is required: the checkpoint to evaluate")
    validation.check_config(cfg)
    start = time.perf_counter()
    from ae_lab.run import resume

    run = train.build(cfg, training=False)
    what = f"ckpt_path={cfg.ckpt_path}"
    ckpt = resume.read_checkpoint(Path(cfg.ckpt_path), what)  # as weights only
    resume.check_checkpoint(ckpt, run.model, what)
    # the weights alone: the training state beside them (optimizer, loops, callbacks) is not
    # this run's, and Lightning would warn about each callback that wrote it
    run.model.load_state_dict(ckpt["state_dict"])
    log.info("evaluating %s", cfg.ckpt_path)
    with resume.stop_cleanly_on_interrupt(run.trainer):
        metrics = run.test(None)
    return run.finish(metrics, time.perf_counter() - start)


@hydra.main(version_base="1.3", config_path=location.config_path(), config_name="eval")
def _main(cfg: DictConfig) -> float | None:
    # its life is a training run's: an evaluation sweep run again skips completed jobs
    metrics = lifecycle.run(cfg, lambda life: evaluate(cfg))
    metric = cfg.get("optimized_metric")
    return metrics.get(metric) if metric else None


def main() -> None:
    try:
        argv = with_run_overrides(prepare_argv(sys.argv[1:]))
    except AeLabError as err:
        exit_with(str(err), err.exit_code)
    sys.argv[1:] = argv
    from ae_lab.config import hydra_errors

    hydra_errors.install()
    exit_promptly(_main)


if __name__ == "__main__":
    main()
