"""``ae-lab-eval`` reads a checkpoint's run as data and never runs it; an evaluation's identity is
the checkpoint's content; any existing checkpoint path is taken, commas and all, moved or not;
an evaluation names its corruption, draws its reconstructions and has a folder family of its own.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser

from ae_lab.core.errors import AeLabError, ConfigError
from ae_lab.core.identity import identity
from ae_lab.evaluation import ReconstructionGrid
from ae_lab.models import DenseAE
from ae_lab.run import build, resume, train
from ae_lab.run import evaluate as evaluate_mod
from ae_lab.run.evaluate import evaluate, with_run_overrides
from tests.conftest import TINY, compose_cfg, run_stage
from tests.test_eval import batch_of, outputs_of, stub_trainer

MARKER = "payload-ran"


def old_run(root: Path, overrides: list[str]) -> Path:
    """A run folder whose checkpoint carries no record of its run (an older ae_lab's), so that
    ``ae-lab-eval`` reads ``.hydra/overrides.yaml``."""
    (root / ".hydra").mkdir(parents=True)
    (root / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (root / "checkpoints").mkdir()
    ckpt = root / "checkpoints" / "best.ckpt"
    torch.save({"state_dict": {}}, ckpt)
    return ckpt


def payloads(marker: Path) -> dict[str, list[str]]:
    """Run-folder overrides that would run code if replayed: each callable, and every other way
    into ``instantiate``, Hydra or a resolver."""
    return {
        "os.system": ["model=ae", "+model._target_=os.system", f"+model._args_=['touch {marker}']"],
        "Path.write_text": [
            "+data._target_=pathlib.Path.write_text",
            f"+data._args_=['{marker}', 'import os']",
        ],
        "builtins.exec": [
            "transform._target_=builtins.exec",
            f"+transform._args_=[\"open('{marker}', 'w')\"]",
        ],
        "subprocess.run": [
            f"+optimizer.evil={{_target_: subprocess.run, args: [touch, {marker}]}}"
        ],
        "_args_ alone": [f"+data._args_=['{marker}']"],
        "_partial_": ["+model._partial_=true"],
        "_recursive_": ["+model._recursive_=false"],
        "_convert_": ["+model._convert_=all"],
        # a key the evaluation leaves out is refused too: never a config to build in hiding
        "callbacks._target_": ["+callbacks.evil._target_=subprocess.run"],
        "callbacks mapping": [
            f"+callbacks.evil={{_target_: os.system, _args_: ['touch {marker}']}}"
        ],
        "hydra callback": ["+hydra.callbacks.evil._target_=os.system"],
        "hydra env": [f"hydra.job.env_set.PYTHONSTARTUP={marker}"],
        "hydra group": ["hydra/launcher=basic"],
        "hydra package": ["model@hydra.callbacks=ae"],
        "interpolation": ["latent=${oc.env:HOME}"],
        "decoded config": ["+model.evil=${oc.decode:'{_target_: os.system}'}"],
        "unknown key": ["+model.evil=1"],
        "unknown top-level key": ["+evil=1"],
        "unknown group": ["+evil=ae"],
        "option outside its group": ["model=../config"],
        "a sweep": ["latent=choice(2,8)"],
        "a mapping": ["data.root={path: x}"],
        "out of range": ["latent=-1"],
        "not an override": ["model=ae=vae"],
    }


NAMES = list(payloads(Path("x")))


@pytest.fixture
def no_instantiation(monkeypatch):
    """Fails the test if anything is composed for the run or instantiated."""

    def refuse(*args, **kwargs):
        raise AssertionError("reached instantiate or the Hydra app")

    monkeypatch.setattr(build, "instantiate", refuse)
    monkeypatch.setattr(evaluate_mod, "_main", refuse)
    monkeypatch.setattr(evaluate_mod, "evaluate", refuse)


def eval_command(monkeypatch, capsys, *argv: str) -> tuple[int, str]:
    """``ae-lab-eval <argv>`` in this process: its exit status and what it printed to stderr."""
    monkeypatch.setattr(sys, "argv", ["ae-lab-eval", *argv])
    with pytest.raises(SystemExit) as stop:
        evaluate_mod.main()
    return stop.value.code, capsys.readouterr().err


@pytest.mark.parametrize("name", NAMES)
def test_a_run_folder_that_would_run_code_is_refused_in_one_line_before_anything_is_built(
    name, tmp_path, monkeypatch, capsys, no_instantiation
) -> None:
    marker = tmp_path / MARKER
    ckpt = old_run(tmp_path / "run", payloads(marker)[name])
    monkeypatch.chdir(tmp_path)
    code, err = eval_command(monkeypatch, capsys, f"ckpt_path={ckpt}", "transform=mask")
    assert code == 2
    assert err.startswith(f"ae_lab: {tmp_path / 'run' / '.hydra' / 'overrides.yaml'}: ")
    assert err.count("\n") == 1  # one line
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no run folder made


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"settings": {"model._target_": "os.system"}}, "sets what instantiate builds"),
        ({"settings": {"model._args_": ["touch x"]}}, "sets what instantiate builds"),
        ({"settings": {"data.root": {"_target_": "os.system"}}}, "is a mapping"),
        ({"settings": {"callbacks.x": {"_target_": "os.system"}}}, "sets what instantiate builds"),
        ({"choices": {"hydra/launcher": "basic"}}, "sets Hydra's own config"),
        ({"settings": {"latent": "${oc.env:HOME}"}}, "holds an interpolation"),
        ({"choices": {"model": "../config"}}, "model has no option '../config'"),
        ({"settings": {"model.evil": 1}}, "is no setting of ae_lab's config"),
        ({"settings": {"latent": 0}}, "latent must be a positive integer"),
        ("model=ae", "is not a record of a run's choices and settings"),
    ],
)
def test_a_checkpoints_record_of_its_run_is_checked_like_a_run_folder(
    record, message, tmp_path
) -> None:
    ckpt = tmp_path / "moved.ckpt"
    saved = {resume.CHECKPOINT_KEY: {"model": "DenseAE", resume.RUN_KEY: record}}
    torch.save({"state_dict": {}, **saved}, ckpt)
    with pytest.raises(ConfigError, match=message) as err:
        with_run_overrides([f"ckpt_path={ckpt}"])
    assert "\n" not in str(err.value)


def test_a_checkpoint_that_would_run_code_is_refused_before_its_run_is_read(tmp_path) -> None:
    marker = tmp_path / MARKER

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    ckpt = old_run(tmp_path / "run", ["model=ae"])
    torch.save({"state_dict": {}, "ae_lab": {"run": Payload()}}, ckpt)
    with pytest.raises(AeLabError, match="holds an object that loading would have to run code"):
        with_run_overrides([f"ckpt_path={ckpt}"])
    assert not marker.exists()


def test_hydras_pickled_rerun_and_a_hand_set_identity_are_refused(tmp_path) -> None:
    with pytest.raises(ConfigError, match="--experimental-rerun loads a pickled config"):
        with_run_overrides(["--experimental-rerun", str(tmp_path / "config.pickle")])
    ckpt = old_run(tmp_path / "run", ["model=ae"])
    with pytest.raises(ConfigError, match="^evaluated_checkpoint is set from the content"):
        with_run_overrides([f"ckpt_path={ckpt}", "evaluated_checkpoint=sha256:0"])


def test_a_plain_run_folder_is_taken_as_values_written_back_for_hydra(tmp_path) -> None:
    """Strings Hydra would read as something else (a number, a list, null) are quoted; the
    choices come first; the user's keys replace the run's."""
    ckpt = old_run(
        tmp_path / "run",
        [
            "model=deep_ae",
            "latent=8",
            "data.root='/data/a,b'",  # a comma: quoted, or Hydra would read a sweep
            "model.hidden=[64,32]",
            "seed=3",
            "trainer.max_epochs=20",
            "~callbacks.latent_map",
        ],
    )
    argv = with_run_overrides([f"ckpt_path={ckpt}", "seed=1"])
    assert argv == [
        "model=deep_ae",
        "latent=8",
        "data.root='/data/a,b'",
        "model.hidden=[64,32]",
        "hydra.mode=RUN",
        f"ckpt_path={ckpt}",
        "seed=1",
    ]


# ------------------------------------------------------------------ identity from content
def test_an_evaluations_identity_is_its_checkpoints_content_not_its_path(tmp_path) -> None:
    ckpt = tmp_path / "a" / "best.ckpt"
    ckpt.parent.mkdir()
    torch.save({"state_dict": {"w": torch.zeros(3)}}, ckpt)

    def job_hash(path: Path) -> str:
        cfg = compose_cfg(f"ckpt_path={path}", run_dir=tmp_path / "job", config_name="eval")
        return identity(cfg, tmp_path / "job")[0]

    first = job_hash(ckpt)
    assert job_hash(ckpt) == first  # unchanged: the same job, skipped when continued
    moved = tmp_path / "elsewhere.ckpt"
    shutil.copy(ckpt, moved)
    assert job_hash(moved) == first  # the same content wherever it lies
    torch.save({"state_dict": {"w": torch.ones(3)}}, ckpt)  # retrained at the same path
    assert job_hash(ckpt) != first
    cfg = compose_cfg(f"ckpt_path={ckpt}", run_dir=tmp_path / "job", config_name="eval")
    import hashlib

    expected = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert identity(cfg, tmp_path / "job")[1]["evaluated_checkpoint"] == f"sha256:{expected}"


# ------------------------------------------------------------------ checkpoint paths
@pytest.mark.parametrize("quote", ["", "'", '"'])
def test_a_checkpoint_under_a_sweep_job_folder_with_commas_is_taken(tmp_path, quote) -> None:
    ckpt = old_run(tmp_path / "multirun" / "x" / "latent=2,model=vae", ["model=vae", "latent=2"])
    relative = ckpt.relative_to(tmp_path)
    argv = with_run_overrides([f"ckpt_path={quote}{ckpt}{quote}"])
    assert argv[:2] == ["model=vae", "latent=2"]
    given = argv[-1]
    parsed = OverridesParser.create().parse_override(given)
    assert (parsed.key_or_group, parsed.value()) == ("ckpt_path", str(ckpt))
    assert not parsed.is_sweep_override()
    cfg = compose_cfg(*argv[:2], given, run_dir=tmp_path / "job", config_name="eval")
    assert Path(cfg.ckpt_path) == ckpt and str(relative).count(",") == 1


def test_a_missing_checkpoint_with_commas_is_one_line(tmp_path) -> None:
    missing = tmp_path / "latent=2,model=vae" / "best.ckpt"
    with pytest.raises(AeLabError) as err:
        with_run_overrides([f"ckpt_path={missing}"])
    assert str(err.value).startswith(f"ckpt_path={missing}: no such file (one checkpoint per")
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------ a moved checkpoint, evaluated
@pytest.fixture
def trained(tmp_path, synthetic_root) -> Path:
    """A tiny VAE trained in this process; its run folder."""
    run = tmp_path / "run"
    cfg = compose_cfg(
        "model=vae",
        "latent=3",
        f"data.root={synthetic_root}",
        "data.val_size=100",
        "logger=none",
        "callbacks=none",
        "threads=1",
        *TINY,
        run_dir=run,
    )
    train.train(cfg)
    return run


def test_a_checkpoint_moved_out_of_its_run_folder_is_evaluated_under_a_corruption(
    trained, tmp_path, synthetic_root, caplog
) -> None:
    ckpt = tmp_path / "shared" / "model.ckpt"
    ckpt.parent.mkdir()
    shutil.move(trained / "checkpoints" / "last.ckpt", ckpt)
    shutil.rmtree(trained)  # nothing of the run folder is left
    record = torch.load(ckpt, weights_only=True)[resume.CHECKPOINT_KEY][resume.RUN_KEY]
    assert record["choices"]["model"] == "vae"
    assert record["settings"]["latent"] == 3

    argv = with_run_overrides(
        [f"ckpt_path={ckpt}", "transform=mask", "transform.p=0.5", "logger=none"]
    )
    assert {"model=vae", "latent=3", f"data.root={synthetic_root}"} <= set(argv)
    out = tmp_path / "eval"
    cfg = compose_cfg(
        *(a for a in argv if a != "hydra.mode=RUN"),
        "threads=1",
        "trainer.limit_test_batches=2",
        "trainer.enable_progress_bar=false",
        "~callbacks.latent_map",
        "~callbacks.generation",
        run_dir=out,
        config_name="eval",
    )
    with caplog.at_level(logging.INFO):
        metrics = evaluate(cfg)
    assert metrics["test/mse"] > 0
    block = next(r.getMessage() for r in caplog.records if "finished" in r.getMessage())
    assert block.startswith("evaluation finished (transform=mask, p=0.5):\n")
    # the one picture a robustness check needs: masked inputs and their reconstructions
    assert (out / "figures" / "reconstructions.png").stat().st_size > 1000


def test_the_test_draws_the_reconstruction_grid_only_where_no_validation_did(tmp_path) -> None:
    """An evaluation (a test alone) gets the grid of its first test batch; a training run keeps
    its last validation epoch's."""
    model = DenseAE(latent_dim=4, hidden=[16]).eval()
    batch = batch_of(8)
    png = tmp_path / "figures" / "reconstructions.png"

    evaluation, tr = ReconstructionGrid(n_images=4), stub_trainer(tmp_path)
    run_stage([evaluation], tr, model, "test", (outputs_of(model, batch), batch))
    assert png.stat().st_size > 1000

    png.unlink()
    training = ReconstructionGrid(n_images=4)
    run_stage([training], tr, model, "val", (outputs_of(model, batch), batch))
    drawn = png.read_bytes()
    run_stage([training], tr, model, "test", (outputs_of(model, batch), batch))
    assert png.read_bytes() == drawn  # the validation grid stays


def test_evaluations_have_a_folder_family_of_their_own(tmp_path) -> None:
    cfg = compose_cfg(run_dir=tmp_path, config_name="eval")
    assert str(cfg.hydra.run.dir).startswith("outputs/eval/")
    assert str(cfg.hydra.sweep.dir).startswith("multirun/eval/")
    training = compose_cfg(run_dir=tmp_path)
    assert not str(training.hydra.run.dir).startswith("outputs/eval/")


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("file", "../../README.md"),
        ("file", "/tmp/x.png"),
        ("figure", "../../../.ssh/id"),
        ("file", ".."),
    ],
)
def test_a_sweeps_declared_figure_names_no_file_outside_its_folder(key, name) -> None:
    """``scripts/results.py`` reads ``report.figures`` back from a sweep's ``multirun.yaml`` and
    deletes and writes the files it names: only names inside docs/figures (and a job's figures)."""
    from scripts import results_figures

    spec = {"plot": "run_figure", "file": "x.png", "caption": "c", "job": "j", "figure": "a.png"}
    assert results_figures.check(spec) is None
    assert results_figures.check({**spec, key: name}) == (
        f"{key} must be a file name without a folder, got {name!r}"
    )
