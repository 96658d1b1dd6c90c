"""Through the entrypoint, as a user sees it: every bad input ends in one message, an interrupted
run resumes to bit-identical metrics, and a sweep keeps and continues what it has. In this
process (``run_in_process``, ``sweep_in_process``) but for the signals and the parallel sweep,
which only a process shows."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from ae_lab.core import records
from ae_lab.reporting.collect import job_dirs, load_yaml
from tests.conftest import (
    REPO,
    TINY,
    InProcessRun,
    ae_lab_command,
    run_in_process,
    sweep_in_process,
)

pytestmark = pytest.mark.integration

# A VAE on noisy inputs draws from every random source a run has: batch order, corruption noise
# and the reparameterisation's samples. 100 batches an epoch leave time to interrupt epoch 1.
RESUMABLE = (
    "model=vae",
    "transform=gaussian",
    "threads=1",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=100",
    "trainer.limit_val_batches=3",
    "trainer.limit_test_batches=3",
    "trainer.num_sanity_val_steps=0",
    "trainer.enable_progress_bar=false",
    "~callbacks.latent_map",
)


def user_run(*overrides: str, cwd: Path, data_root: Path) -> InProcessRun:
    """A run into ``cwd/run`` unless the overrides name its folder."""
    named = any(o.startswith("hydra.run.dir=") for o in overrides)
    run_dir = None if named else cwd / "run"
    return run_in_process(*overrides, run_dir=run_dir, data_root=data_root, check=False)


def assert_one_message(run: InProcessRun, *words: str) -> None:
    assert run.code != 0
    for word in words:
        assert word in run.message


def run_metrics(run_dir: Path) -> dict[str, float]:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {k: v for k, v in metrics.items() if not k.startswith("time/")}


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory, mnist_root) -> Path:
    """The run the interrupted ones must match, two epochs without a stop."""
    run_dir = tmp_path_factory.mktemp("unbroken") / "run"
    return run_in_process(*RESUMABLE, run_dir=run_dir, data_root=mnist_root).run_dir


@pytest.mark.parametrize(
    "overrides, words",
    [
        (["data.batch_size=0"], ["data.batch_size", "got 0", ">= 1"]),
        (["optimizer.lr=-1"], ["optimizer.lr", "got -1", "> 0"]),
        (["data.val_size=70000"], ["data.val_size", "got 70000", "[1, 60000)"]),
        (["data.root={tmp}/none", "data.download=false"], ["MNIST", "/none", "AE_LAB_DATA_DIR"]),
        (["ckpt_path={tmp}/none/last.ckpt"], ["ckpt_path", "no such file"]),
        (["ckpt_path={repo}/README.md"], ["ckpt_path", "cannot be read as a checkpoint"]),
        (
            ["ckpt_path=last", "+trainer.enable_checkpointing=false"],
            ["ckpt_path=last", "trainer.enable_checkpointing=false"],
        ),
        (["optimizer=sgd", "optimizer.lr=1e30", *TINY], ["not finite", "epoch 0", "loss=nan"]),
    ],
)
def test_a_bad_input_ends_in_one_message(tmp_path, mnist_root, overrides, words):
    overrides = [o.format(tmp=tmp_path, repo=REPO) for o in overrides]
    proc = user_run(*overrides, cwd=tmp_path, data_root=mnist_root)
    assert_one_message(proc, *words)
    if "not finite" in words:  # the run got as far as training and is recorded as failed
        assert json.loads((tmp_path / "run" / "job.json").read_text())["status"] == "failed"


@pytest.mark.skipif(torch.cuda.is_available(), reason="asks for a GPU where there is none")
def test_gpu_without_a_gpu_suggests_auto(tmp_path, mnist_root):
    proc = user_run("accelerator=gpu", cwd=tmp_path, data_root=mnist_root)
    assert_one_message(proc, "accelerator=gpu", "accelerator=auto")


@pytest.mark.parametrize(
    "name, damage",
    [
        ("train-labels-idx1-ubyte", lambda data: data[:-10]),  # truncated
        ("t10k-images-idx3-ubyte", lambda data: data[:-1] + bytes([data[-1] ^ 1])),  # altered
    ],
)
def test_a_damaged_mnist_file_is_named(tmp_path, mnist_root, name, damage):
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for source in (mnist_root / "MNIST" / "raw").glob("*-ubyte"):
        (raw / source.name).symlink_to(source)
    (raw / name).unlink()
    (raw / name).write_bytes(damage((mnist_root / "MNIST" / "raw" / name).read_bytes()))
    proc = user_run(*TINY, cwd=tmp_path, data_root=tmp_path / "data")
    assert_one_message(proc, f"{raw / name} is damaged")


@pytest.mark.parametrize(
    "overrides, words",
    [
        (["model=ae"], ["objective Variational", "objective Reconstruction", "model="]),
        (["latent=4"], ["latent=32"]),
        (["trainer.max_epochs=3"], ["run of 200 training steps", "has 300", "trainer.max_epochs"]),
    ],
)
def test_a_checkpoint_of_another_model_is_refused(tmp_path, mnist_root, unbroken, overrides, words):
    ckpt = unbroken / "checkpoints" / "last.ckpt"
    proc = user_run(*RESUMABLE, *overrides, f"ckpt_path={ckpt}", cwd=tmp_path, data_root=mnist_root)
    assert_one_message(proc, f"ckpt_path={ckpt}", *words)


@pytest.mark.parametrize(
    "sig, code, what", [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "Ctrl-C")]
)
def test_an_interrupted_run_resumes_bit_identically(
    tmp_path, mnist_root, unbroken, sig, code, what
):
    """Stopped in epoch 1 as SLURM (SIGTERM) or a user (Ctrl-C) would stop it, then resumed with
    ``ckpt_path=last``. A shorter first run cannot stand in for the stop: the learning-rate
    schedule spans the whole run's steps, so it would train differently. The run directory's
    name needs quotes, for Hydra (the comma) and for the shell (the space); the run continues
    with the command it printed."""
    run_dir = tmp_path / "my run, 1"
    command = ae_lab_command(
        *RESUMABLE, f"hydra.run.dir='{run_dir}'", data_root=mnist_root, full_error=False
    )
    with open(tmp_path / "out.txt", "w") as out, open(tmp_path / "err.txt", "w") as err:
        proc = subprocess.Popen(**command, cwd=tmp_path, stdout=out, stderr=err)
        deadline = time.monotonic() + 300
        while not (run_dir / "checkpoints" / "last.ckpt").exists():  # epoch 0 is done
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(sig)
        assert proc.wait(timeout=300) == code
    message = (tmp_path / "err.txt").read_text()
    assert "Traceback" not in message
    [stopped] = [line for line in message.splitlines() if line.startswith("ae_lab: stopped")]
    assert f"stopped by {what}" in stopped
    continued = shlex.split(stopped.split("the same command with ", 1)[1])
    assert continued[-1] == "ckpt_path=last"
    run = run_in_process(*RESUMABLE, *continued, data_root=mnist_root)
    assert run.run_dir == run_dir and "resuming from" in run.out
    assert run_metrics(run_dir) == run_metrics(unbroken)


def test_a_sweep_keeps_its_jobs_past_a_failure_and_continues_where_it_stopped(tmp_path, mnist_root):
    sweep = tmp_path / "sweep"
    command = ("latent=2,abc,4", *TINY, "threads=1", "callbacks=none", "logger=none")
    ended = sweep_in_process(*command, sweep_dir=sweep, data_root=mnist_root, check=False)
    assert ended.code != 0 and "latent must be a positive integer" in str(ended.error)
    jobs = {re.split("[,@]", p.name)[0]: p for p in sweep.iterdir() if p.is_dir()}
    status = {k: json.loads((p / "job.json").read_text()) for k, p in jobs.items()}
    assert [status[k]["status"] for k in ("latent=2", "latent=abc", "latent=4")] == [
        "completed",
        "failed",
        "completed",
    ]
    assert status["latent=abc"]["error"].startswith("latent must be a positive integer")
    assert "| failed |" in (sweep / "summary.md").read_text()

    # latent=4 looks stopped (its record still says running, as a kill leaves it); running the
    # sweep again skips latent=2 untouched and continues latent=4 from its last.ckpt
    stopped = records.read(jobs["latent=4"])
    stopped.status, stopped.fit = records.RUNNING, None
    records.write(jobs["latent=4"], stopped)
    kept = {f: f.stat().st_mtime_ns for f in jobs["latent=2"].rglob("*") if ".hydra" not in f.parts}
    again = sweep_in_process(*command, sweep_dir=sweep, data_root=mnist_root, check=False)
    assert again.code != 0  # latent=abc fails again
    assert f"{jobs['latent=2'].name}: completed in an earlier run of this sweep, skipped" in (
        again.out
    )
    assert {f: f.stat().st_mtime_ns for f in kept} == kept
    resumed = f"resuming from {jobs['latent=4'] / 'checkpoints' / 'last.ckpt'}"
    assert resumed in (jobs["latent=4"] / "train.log").read_text()  # a sweep job's log file
    assert json.loads((jobs["latent=4"] / "job.json").read_text())["status"] == "completed"


def test_a_sweep_without_checkpoint_callbacks_resumes_and_sets_a_damaged_checkpoint_aside(
    tmp_path, mnist_root
):
    """``callbacks=none`` still writes each job's ``last.ckpt``, which a re-run of the sweep
    resumes from; a ``last.ckpt`` cut short is renamed aside and its job trains afresh, instead of
    failing on every re-run."""
    sweep = tmp_path / "sweep"
    command = ("latent=2,4", "callbacks=none", *TINY, "threads=1")
    sweep_in_process(*command, sweep_dir=sweep, data_root=mnist_root)
    jobs = {load_yaml(d / ".hydra" / "config.yaml")["latent"]: d for d in job_dirs(sweep)}
    damaged, whole = (jobs[n] / "checkpoints" / "last.ckpt" for n in (2, 4))
    cut = damaged.read_bytes()[: damaged.stat().st_size // 2]
    damaged.write_bytes(cut)
    for job in jobs.values():  # as if the sweep had been killed before their end: still running
        stopped = records.read(job)
        stopped.status, stopped.fit = records.RUNNING, None
        records.write(job, stopped)

    again = sweep_in_process(*command, sweep_dir=sweep, data_root=mnist_root)
    out = again.out + again.err
    [aside] = damaged.parent.glob("last.ckpt.damaged-*")
    assert f"{damaged} is damaged" in out and f"set aside as {aside}" in out
    assert aside.read_bytes() == cut
    logs = "".join((job / "train.log").read_text() for job in jobs.values())  # details there
    assert f"resuming from {damaged}" not in logs
    assert torch.load(damaged, weights_only=False)["epoch"] == 0  # written afresh, and whole
    assert f"resuming from {whole}" in logs
    for job in jobs.values():
        assert json.loads((job / "job.json").read_text())["status"] == "completed"


def session_processes(session: int) -> dict[int, str]:
    """The live processes of a session (a process started with ``start_new_session``) and their
    command lines, from /proc."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # it ended meanwhile
            continue
        state, _, _, sid = text[text.rindex(")") + 2 :].split()[:4]
        if int(sid) == session and state != "Z":
            found[int(stat.parent.name)] = cmdline
    return found


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_parallel_sweep_leaves_no_worker_running(tmp_path, mnist_root, sig):
    """SIGTERM (or Ctrl-C) ends the sweep with its workers; a sweep killed outright takes them
    along too. Each worker holds about 1 GB, and would otherwise train on to its job's end."""
    sweep = tmp_path / "parallel sweep"
    command = ae_lab_command(
        "-m",
        "hydra/launcher=parallel",
        "latent=2,4",
        "callbacks=none",
        "logger=none",
        "threads=1",
        *TINY,
        "trainer.max_epochs=100000",  # trains until stopped (over debug=tiny's one epoch)
        f"hydra.sweep.dir={sweep}",
        data_root=mnist_root,
        full_error=False,
    )
    with open(tmp_path / "out.txt", "w") as out, open(tmp_path / "err.txt", "w") as err:
        proc = subprocess.Popen(
            **command, cwd=tmp_path, stdout=out, stderr=err, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 300
            while len(list(sweep.glob("*/checkpoints/last.ckpt"))) < 2:  # both jobs train
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
            workers = [p for p, cmd in session_processes(proc.pid).items() if "LokyProcess" in cmd]
            assert len(workers) == 2
            proc.send_signal(sig)
            code = proc.wait(timeout=120)
            deadline = time.monotonic() + 60
            while left := session_processes(proc.pid):
                assert time.monotonic() < deadline, f"still running: {left}"
                time.sleep(0.1)
        finally:  # never leave a runaway sweep behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    if sig == signal.SIGTERM:
        assert code == 143
        message = (tmp_path / "err.txt").read_text()
        assert "Traceback" not in message
        [stopped] = [line for line in message.splitlines() if line.startswith("ae_lab: stopped")]
        assert shlex.split(stopped.split("the same command with ", 1)[1]) == [
            f'hydra.sweep.dir="{sweep}"'
        ]
