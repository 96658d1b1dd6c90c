"""The ``ae-lab-eval`` command (and ``python -m ae_lab.eval``): a trained model tested again.

``ae-lab-eval ckpt_path=<run>/checkpoints/best.ckpt transform=mask transform.p=0.5`` tests the
checkpoint's model under a corruption it may not have been trained on, exactly as training ends:
``trainer.test`` with every test-time callback of the ``callbacks`` group, PCA with as many
components fitted on the same training split, ``metrics.json``, ``job.json`` and the loggers'
output in a run folder of its own. ``-m transform=none,gaussian,mask`` makes it a sweep, with the
sweep's summary, like any other.

The model is the checkpoint's: ae_lab's checkpoints carry the choices and settings their run was
composed with (``ae_lab.config.trained_run.describe``, under the ``ae_lab`` key), so a checkpoint
moved out of its run folder is evaluated as well; one of an older ae_lab is read with its run
folder's ``.hydra/overrides.yaml`` (beside ``checkpoints/``). Either is read as data, never
replayed as written: only plain choices and settings of ae_lab's own config pass, checked by the
same rules as the command line, and anything else (a ``_target_``, a Hydra key, an interpolation)
ends the command with one line before anything is composed for it
(``ae_lab.config.trained_run``). They are put on the command line ahead of the user's, so the user
types only what changes; left out are how a run is carried out (``trained_run.EVAL_SETUP``: the
callbacks, loggers, trainer and Hydra settings, which come from ``conf/eval.yaml`` and the command
line) and every key the user gives again. The checkpoint is then checked against the model built
(class, latent size, weight shapes) and read as weights only (``ae_lab.core.checkpoints.load``).

An evaluation's identity is the checkpoint's content (``evaluated_checkpoint``, its sha256), not
its path: an evaluation sweep run again tests a checkpoint retrained at the same path and skips
an unchanged one.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import yaml
from omegaconf import DictConfig, OmegaConf

from ae_lab.config import location, trained_run, validation
from ae_lab.core import lifecycle
from ae_lab.core.errors import AeLabError, ConfigError, exit_with
from ae_lab.core.identity import override_key
from ae_lab.run import build, process
from ae_lab.run.cli import exit_promptly, prepare_argv

log = logging.getLogger(__name__)
CKPT = re.compile(r"(?P<prefix>\+{0,2})ckpt_path=(?P<path>.*)")
# the checkpoint's run folder holds Hydra's record of how it was composed here
RUN_OVERRIDES = Path(".hydra") / "overrides.yaml"
# flags that print something and run nothing, so need no checkpoint
INFO_FLAGS = ("-h", "--help", "--hydra-help", "-c", "--cfg", "-i", "--info", "--version")
# Hydra's flag that unpickles a run folder's config.pickle: code from a file
RERUN_FLAG = "--experimental-rerun"


def checkpoint_path(given: str) -> Path:
    """The file ``ckpt_path=<given>`` names, as the shell passed it: quoted for Hydra or not,
    commas and ``=`` included (a sweep job's folder, ``latent=2,model=vae``); raises unless it
    is a file."""
    path = given
    if len(given) >= 2 and given[0] == given[-1] and given[0] in "'\"":
        from hydra.core.override_parser.overrides_parser import OverridesParser

        try:
            value = OverridesParser.create().parse_override(f"ckpt_path={given}").value()
        except Exception:  # noqa: BLE001 - not a quoted string Hydra reads: the name as it is
            value = given[1:-1]
        path = value if isinstance(value, str) else given[1:-1]
    file = Path(path).expanduser()
    if file.is_file():
        return file
    hint = (
        " (one checkpoint per command, each has its own model; sweep over the corruption "
        "instead, e.g. -m transform=none,gaussian,mask)"
        if "," in given
        else ""
    )
    raise AeLabError(
        f"ckpt_path={given}: no such file{hint}. Give a trained run's checkpoint, e.g. "
        "outputs/<date>/<time>/checkpoints/best.ckpt"
    )


def trained_run_of(ckpt: Path, what: str) -> tuple[trained_run.TrainedRun, str]:
    """The choices and settings the checkpoint's run was composed with, read as data, and where
    they were read: the checkpoint's own record, else its run folder's."""
    from ae_lab.run import resume

    saved = resume.read_checkpoint(ckpt, what).get(resume.CHECKPOINT_KEY)  # as weights only
    if isinstance(saved, dict) and saved.get(resume.RUN_KEY) is not None:
        source = f"{what}'s record of its run"
        return trained_run.from_checkpoint(saved[resume.RUN_KEY], source), source
    folder = ckpt.resolve().parent.parent / RUN_OVERRIDES
    if not folder.is_file():
        raise AeLabError(
            f"{what} does not say which model it holds: it carries no record of its run (it was "
            f"saved by an older ae_lab or another program) and there is no {RUN_OVERRIDES} "
            "beside its checkpoints/ folder. Give the checkpoint where its run wrote it"
        )
    try:
        overrides = yaml.safe_load(folder.read_text()) or []
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{folder} cannot be read as Hydra's list of overrides") from err
    return trained_run.from_overrides(overrides, str(folder)), str(folder)


def run_overrides(ckpt: Path, what: str, given: list[str]) -> list[str]:
    """The overrides that rebuild the checkpoint's model and data, less those the user gives
    again (``transform=mask`` replaces the run's ``transform`` and every ``transform.*``)."""
    run, source = trained_run_of(ckpt, what)
    mine = [override_key(o).replace("/", ".") for o in given if "=" in o or o.startswith("~")]
    return trained_run.check(run, source, mine)


def with_run_overrides(argv: list[str]) -> list[str]:
    """``argv`` with the checkpoint's run overrides put just before ``ckpt_path=``, so that
    Hydra composes the model the checkpoint holds and then the user's changes; ``ckpt_path``
    itself written as one quoted value, whatever its commas."""
    if RERUN_FLAG in argv:
        raise ConfigError(
            f"{RERUN_FLAG} loads a pickled config, which can run code from the file; "
            "ae-lab-eval takes ckpt_path=<checkpoint> instead"
        )
    if any(override_key(a) == "evaluated_checkpoint" for a in argv if "=" in a):
        raise ConfigError(
            "evaluated_checkpoint is set from the content of ckpt_path's file; give ckpt_path"
        )
    at = next((i for i, a in enumerate(argv) if CKPT.fullmatch(a)), None)
    if at is None:
        if not any(a in INFO_FLAGS for a in argv):
            raise AeLabError(
                "ckpt_path is required: the checkpoint to evaluate, e.g. "
                "ckpt_path=outputs/<date>/<time>/checkpoints/best.ckpt"
            )
        return argv
    match = CKPT.fullmatch(argv[at])
    ckpt = checkpoint_path(match["path"])
    given = [a for a in argv if not a.startswith("-") and a != argv[at]]
    replayed = run_overrides(ckpt, f"ckpt_path={match['path']}", given)
    if "--multirun" not in argv:  # a replayed preset may make a sweep; one run was asked for
        replayed.append("hydra.mode=RUN")
    own = trained_run.as_override("ckpt_path", str(ckpt), prefix=match["prefix"])
    return [*argv[:at], *replayed, own, *argv[at + 1 :]]


def corruption(cfg: DictConfig) -> str:
    """``transform=mask, p=0.5``: the corruption an evaluation tested, as the user sets it."""
    from hydra.core.hydra_config import HydraConfig

    name = HydraConfig.get().runtime.choices.get("transform") if HydraConfig.initialized() else None
    settings: Any = (
        OmegaConf.to_container(cfg.transform, resolve=True) if cfg.get("transform") else {}
    )
    parts = [f"transform={name or 'none'}"]
    parts += [f"{k}={v}" for k, v in settings.items() if not str(k).startswith("_")]
    return ", ".join(parts)


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Tests the checkpoint ``cfg.ckpt_path`` as the run ``cfg`` describes, and returns (and
    records) every metric the test logged. Its life is a training run's
    (``ae_lab.core.lifecycle``): an evaluation sweep run again skips completed jobs."""
    return lifecycle.run(cfg, lambda life: _evaluate(cfg))


def _evaluate(cfg: DictConfig) -> dict[str, float]:
    if not cfg.get("ckpt_path"):  # given on the command line: with_run_overrides says so
        raise AeLabError("ckpt_path is required: the checkpoint to evaluate")
    validation.check_config(cfg)
    start = time.perf_counter()
    from ae_lab.run import resume

    run = build.build(cfg, training=False)
    what = f"ckpt_path={cfg.ckpt_path}"
    ckpt = resume.read_checkpoint(Path(cfg.ckpt_path), what)  # as weights only
    resume.check_checkpoint(ckpt, run.model, what)
    # the weights alone: the training state beside them (optimizer, loops, callbacks) is not
    # this run's, and Lightning would warn about each callback that wrote it
    run.model.load_state_dict(ckpt["state_dict"])
    log.info("evaluating %s", cfg.ckpt_path)
    with resume.stop_cleanly_on_interrupt(run.trainer):
        metrics = run.test(None)
    return run.finish(
        metrics, time.perf_counter() - start, heading=f"evaluation finished ({corruption(cfg)})"
    )


@hydra.main(version_base="1.3", config_path=location.config_path(), config_name="eval")
def _main(cfg: DictConfig) -> float | None:
    process.setup()  # in a launcher's fresh process too, where this is the first ae_lab code run
    metrics = evaluate(cfg)
    metric = cfg.get("optimized_metric")
    return metrics.get(metric) if metric else None


def main() -> None:
    process.setup()
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
