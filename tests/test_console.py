"""What a user reads on the console: each line once, no adverts, a model summary of layers only,
a progress bar redrawn by time, one block at the end of a run and one line at the end of a sweep,
``--help`` with the user's groups described, and a hint for the wrong Python; the debug presets.

The entrypoint tests share one tiny sweep and one ``--help`` (scope="module"); a single run's
console is read from the README's first command (tests/test_first_command.py).
"""

from __future__ import annotations

import io
import logging
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from tqdm import tqdm

from ae_lab.callbacks.progress_and_summary import ModelSummary, ProgressBar
from ae_lab.config import help as help_text
from ae_lab.models.dense import DenseAE
from ae_lab.reporting import metrics
from ae_lab.reporting import run_end as console
from ae_lab.run.train import CONFIG_DIR
from ae_lab.sweeps.sweep import summary_line
from tests.conftest import (
    FAST,
    REPO,
    SYNTHETIC,
    TINY,
    ae_lab_command,
    compose_cfg,
    options,
    run_ae_lab,
    sweep_in_process,
)

# the groups --help must not list: preset internals, Hydra's sweepers, the launcher behind parallel
HIDDEN = ("report_job", "hydra/sweeper", "sampler", "joblib", "hydra/job_logging")


def shown_options() -> list[str]:
    """``group=option`` for every option file of the groups --help lists."""
    groups = [*help_text._default_choices(Path(CONFIG_DIR)), *help_text.HYDRA_GROUPS]
    return [
        f"{g}={option}"
        for g in groups
        if g not in (*help_text.HIDDEN, "hydra")
        for option in options(g)
    ]


# ------------------------------------------------------------------ through the entrypoint
# (a single run's console: the README's first command, tests/test_first_command.py)
def test_a_sweep_ends_with_its_summary_and_job_counts(tmp_path, synthetic_root):
    sweep_dir = tmp_path / "sweep"
    sweep = sweep_in_process(
        "latent=2", *FAST, *SYNTHETIC, sweep_dir=sweep_dir, data_root=synthetic_root
    )
    out = sweep.out + sweep.err
    assert f"sweep finished: 1 completed, 0 failed; summary in {sweep_dir / 'summary.md'}" in out
    # logger=none: no logger to point at
    [last] = [line for line in out.splitlines() if "sweep finished:" in line]
    assert last.endswith("summary.md") and "tensorboard" not in last


@pytest.fixture(scope="module")
def help_output(tmp_path_factory, mnist_root):
    tmp = tmp_path_factory.mktemp("help")
    return run_ae_lab("--help", cwd=tmp, data_root=mnist_root).stdout


@pytest.mark.integration
def test_help_lists_the_user_groups_each_option_described(help_output):
    for hidden in HIDDEN:
        assert hidden not in help_output
    options = shown_options()
    assert {"model=conv_vae", "debug=tiny", "hydra/launcher=parallel"} <= set(options)
    for option in options:
        line = re.search(rf"^  {re.escape(option)} +(\S.*)$", help_output, re.M)
        assert line, f"--help lacks {option} or its description"
    for key in ("latent", "seed", "threads", "ckpt_path"):
        assert re.search(rf"^  {key} +\S", help_output, re.M), key


@pytest.mark.integration
def test_the_wrong_python_gets_a_one_line_hint(tmp_path, mnist_root):
    """A Python without Hydra (here the test's own, with Hydra hidden from it)."""
    code = (
        "import runpy, sys; sys.modules['hydra'] = None; "
        "runpy.run_module('ae_lab', run_name='__main__')"
    )
    command = ae_lab_command(data_root=mnist_root, entry=("-c", code))
    proc = subprocess.run(**command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert sys.executable in lines[0] and "hydra" in lines[0]
    assert "make setup" in lines[0] and ".venv/bin/python -m ae_lab" in lines[0]


# --------------------------------------------------------------------------------- unit tests
def test_the_end_of_run_block_shows_the_ratio_and_where_to_look(tmp_path):
    from lightning.pytorch.loggers import TensorBoardLogger

    values = {"test/mse": 0.02, "pca/test_mse": 0.04, "val/mse": 1}
    block = console.run_end_block(values, tmp_path, [TensorBoardLogger(tmp_path, "", "")])
    assert re.search(rf"^  {re.escape(metrics.RATIO)} +0\.5 ", block, re.M)
    assert "val/mse" not in block  # not a run-end metric
    assert f" --logdir {tmp_path}\n" in block
    assert block.endswith("#custom_scalars&_smoothingWeight=0")  # the model-vs-PCA charts, raw


def test_the_sweep_line_counts_completed_and_failed_jobs(tmp_path):
    rows = [{"status": "completed"}, {"status": "failed"}, {"status": "completed"}]
    line = summary_line(rows, tmp_path, final=True, views=[f"curves: tb --logdir {tmp_path}"])
    assert line.startswith("sweep finished: 2 completed, 1 failed; summary in ")
    assert str(tmp_path / "summary.md") in line and f"tb --logdir {tmp_path}" in line
    assert summary_line(rows, tmp_path, final=False).startswith(
        "sweep summary updated: 2 completed"
    )


def test_lightning_lines_are_printed_once_without_adverts():
    import lightning  # noqa: F401 - adds Lightning's own handler

    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root.addHandler(handler)
    try:
        console.quiet_lightning()
        info = logging.getLogger("lightning.pytorch.utilities.rank_zero")
        info.info("💡 Tip: For seamless cloud logging ... litlogger")
        info.info("GPU available: False")
    finally:
        root.removeHandler(handler)
    assert stream.getvalue() == "GPU available: False\n"
    assert logging.getLogger("lightning").handlers == []


def test_log_lines_start_a_line_of_their_own_beside_a_bar():
    stream = io.StringIO()
    handler = console.ConsoleHandler(stream)
    bar = tqdm(total=10, file=io.StringIO())
    try:
        bar.update(3)
        handler.emit(logging.makeLogRecord({"msg": "hello"}))
    finally:
        bar.close()
    handler.emit(logging.makeLogRecord({"msg": "after"}))
    assert stream.getvalue() == "\nhello\nafter\n"


def test_the_bar_redraws_by_time_and_at_the_end(monkeypatch):
    clock = iter([0.0, 0.1, 0.5, 1.2, 1.3, 1.4])
    monkeypatch.setattr("ae_lab.callbacks.progress_and_summary.time.monotonic", lambda: next(clock))
    bar = ProgressBar(interval_s=1.0)
    shown = [bar._should_update(n, 100 if n < 6 else 6) for n in range(1, 7)]
    # the first step, the first after a second, and the last of the bar whatever the time
    assert shown == [True, False, False, True, False, True]


def test_the_model_summary_lists_layers_not_metrics(caplog):
    model = DenseAE(latent_dim=4)
    trainer = SimpleNamespace(strategy=None, is_global_zero=True)
    with caplog.at_level(logging.INFO, logger="ae_lab.callbacks.progress_and_summary"):
        ModelSummary().on_fit_start(trainer, model)
    table = caplog.records[-1].getMessage()
    assert "encoder" in table and "decoder" in table
    assert "val_mse" not in table and "MeanSquaredError" not in table and "FLOP" not in table


def test_debug_presets_set_the_trainer():
    tiny = compose_cfg(*TINY).trainer
    assert (tiny.max_epochs, tiny.limit_train_batches, tiny.limit_val_batches) == (1, 2, 2)
    assert (tiny.limit_test_batches, tiny.num_sanity_val_steps) == (2, 0)
    assert tiny.enable_progress_bar is False
    overfit = compose_cfg("debug=overfit").trainer
    assert overfit.overfit_batches == 1 and overfit.max_epochs > 1
    assert compose_cfg("debug=profile").trainer.profiler == "simple"
    assert compose_cfg().trainer.limit_train_batches is None  # no preset by default


def test_help_descriptions_are_the_first_sentence_of_each_file(tmp_path):
    option = tmp_path / "x.yaml"
    option.write_text("# @package _global_\n# Does a thing: in detail. More.\n# and more\na: 1\n")
    assert help_text.first_sentence(help_text.opening_comment(option)) == "Does a thing: in detail"
    assert help_text.first_sentence(["# e.g. this one (null: none)", "# goes on. Not this"]) == (
        "e.g. this one (null: none) goes on"
    )
    assert REPO.joinpath("conf").is_dir()
