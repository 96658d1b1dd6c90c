"""How ``ae-lab-eval`` finds the model of a checkpoint: its run's overrides, less the evaluation's
own settings and the user's changes; and the one line for a checkpoint it cannot use."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from ae_lab.core.errors import AeLabError
from ae_lab.core.identity import identity
from ae_lab.run.evaluate import with_run_overrides
from tests.conftest import compose_cfg


def fake_run(root: Path, overrides: list[str]) -> Path:
    """A run folder as an older ae_lab left it: Hydra's record of its overrides and a checkpoint
    that carries no record of its own."""
    (root / ".hydra").mkdir(parents=True)
    (root / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (root / "checkpoints").mkdir()
    ckpt = root / "checkpoints" / "best.ckpt"
    torch.save({"state_dict": {}}, ckpt)
    return ckpt


def test_the_runs_model_settings_come_first_and_the_users_changes_replace_them(tmp_path) -> None:
    trained = [
        "model=conv_vae",
        "latent=8",
        "transform=gaussian",
        "transform.std=0.5",
        "+model.beta=2",
        "trainer.max_epochs=20",
        "callbacks=none",
        "logger=csv",
        "ckpt_path=last",
        "threads=4",
    ]
    ckpt = fake_run(tmp_path / "run", trained)
    argv = ["--multirun", f"ckpt_path={ckpt}", "transform=mask,none", "threads=1"]
    assert with_run_overrides(argv) == [
        "--multirun",
        "model=conv_vae",
        "latent=8",
        "model.beta=2",  # how the run was set up (trainer, loggers, threads) is left out
        f"ckpt_path={ckpt}",
        "transform=mask,none",  # replaces the run's transform and every transform.*
        "threads=1",
    ]
    # a single evaluation stays one run even when the run's preset made a sweep
    assert with_run_overrides([f"ckpt_path={ckpt}"])[-2:] == ["hydra.mode=RUN", f"ckpt_path={ckpt}"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "ckpt_path is required: the checkpoint to evaluate"),
        (["ckpt_path=nowhere.ckpt"], "ckpt_path=nowhere.ckpt: no such file"),
        (["ckpt_path=a.ckpt,b.ckpt"], "ckpt_path=a.ckpt,b.ckpt: no such file"),
    ],
)
def test_a_missing_checkpoint_is_one_line(argv, message) -> None:
    with pytest.raises(AeLabError, match="^" + message.replace(".", r"\.")) as err:
        with_run_overrides(argv)
    assert "\n" not in str(err.value)


def test_a_checkpoint_without_a_record_outside_its_run_folder_is_refused_with_one_line(
    tmp_path,
) -> None:
    loose = tmp_path / "loose.ckpt"
    torch.save({"state_dict": {}}, loose)  # no record of its run: an older ae_lab's
    with pytest.raises(AeLabError) as err:
        with_run_overrides([f"ckpt_path={loose}"])
    assert str(err.value) == (
        f"ckpt_path={loose} does not say which model it holds: it carries no record of its run "
        "(it was saved by an older ae_lab or another program) and there is no "
        ".hydra/overrides.yaml beside its checkpoints/ folder. Give the checkpoint where its run "
        "wrote it"
    )


def test_help_and_the_config_need_no_checkpoint() -> None:
    assert with_run_overrides(["--cfg", "job"]) == ["--cfg", "job"]


def test_an_evaluations_identity_is_the_checkpoint_it_tests_and_trainings_is_not(tmp_path):
    """A sweep re-run into the same folder with another checkpoint tests it (no skip); a
    training run's ckpt_path (where it continues from) changes nothing it computes."""

    def job_hash(*overrides: str, config_name: str = "config") -> str:
        cfg = compose_cfg(*overrides, run_dir=tmp_path, config_name=config_name)
        return identity(cfg, tmp_path)[0]

    (tmp_path / "best.ckpt").write_bytes(b"best")  # the identity is the file's content
    (tmp_path / "last.ckpt").write_bytes(b"last")
    best, last = f"ckpt_path={tmp_path}/best.ckpt", f"ckpt_path={tmp_path}/last.ckpt"
    assert job_hash(best, config_name="eval") != job_hash(last, config_name="eval")
    assert job_hash("ckpt_path=last") == job_hash()
