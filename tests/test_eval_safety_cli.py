"""``ae-lab-eval`` as a user runs it: a run folder that would run code ends the command in one line
with nothing made, and an evaluation sweep of a checkpoint under a sweep job's folder (commas in
its path) skips its jobs while the checkpoint is unchanged and tests it again once retrained."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import TINY, run_ae_lab, run_in_process, sweep_in_process

EVAL = ("-m", "ae_lab.eval")
QUICK = ("threads=1", "callbacks=none", "logger=none", "trainer.limit_test_batches=2")


@pytest.mark.integration
def test_a_run_folder_that_would_run_code_ends_the_command_in_one_line(
    tmp_path, synthetic_root
) -> None:
    marker = tmp_path / "payload.pth"
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    (run / ".hydra" / "overrides.yaml").write_text(
        yaml.safe_dump(
            ["model=ae", "+data._target_=pathlib.Path.write_text", f"+data._args_=['{marker}', x]"]
        )
    )
    torch.save({"state_dict": {}}, run / "checkpoints" / "best.ckpt")  # an older ae_lab's
    proc = run_ae_lab(
        f"ckpt_path={run}/checkpoints/best.ckpt",
        cwd=tmp_path,
        data_root=synthetic_root,
        check=False,
        full_error=False,
        entry=EVAL,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"ae_lab: {run}/.hydra/overrides.yaml: +data._target_=")
    assert proc.stderr.count("\n") == 1
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no outputs/ made


def summary(sweep: Path) -> dict[str, dict[str, str]]:
    with open(sweep / "summary.csv") as f:
        return {row["transform"]: row for row in csv.DictReader(f)}


def test_an_evaluation_sweep_skips_an_unchanged_checkpoint_and_tests_a_retrained_one(
    tmp_path, synthetic_root
) -> None:
    """In process (the sweep's own steps, ``sweep_in_process``): the console script itself is
    run above and by tests/test_eval_command.py."""
    job = tmp_path / "multirun" / "x" / "latent=2,model=ae"  # a sweep job's folder name
    run_in_process(
        "latent=2",
        "data.val_size=100",
        *QUICK,
        *TINY,
        f"hydra.run.dir='{job}'",  # quoted for Hydra, as a user quotes it
        data_root=synthetic_root,
    )
    ckpt = job / "checkpoints" / "last.ckpt"
    sweep = tmp_path / "eval"
    args = (
        f"ckpt_path={ckpt}",  # unquoted, as a shell passes it
        "transform=none,mask",
        *QUICK,
        "trainer.enable_progress_bar=false",
    )

    def evaluate_sweep():
        return sweep_in_process(
            *args, sweep_dir=sweep, data_root=synthetic_root, config_name="eval"
        )

    evaluate_sweep()
    first = summary(sweep)
    assert {r["status"] for r in first.values()} == {"completed"}
    again = evaluate_sweep()
    assert again.out.count("completed in an earlier run of this sweep, skipped") == 2
    state = torch.load(ckpt, weights_only=True)  # retrained at the same path: other weights
    for weights in state["state_dict"].values():
        weights.mul_(0.5)
    torch.save(state, ckpt)
    retested = evaluate_sweep()
    assert "skipped" not in retested.out
    after = summary(sweep)
    for transform in ("none", "mask"):
        assert after[transform]["status"] == "completed"
        assert float(after[transform]["test/mse"]) != pytest.approx(
            float(first[transform]["test/mse"])
        )
