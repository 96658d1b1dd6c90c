"""Stand-ins for SLURM's ``sbatch``, ``srun``, ``sacct``, ``scontrol`` and ``scancel``: just
enough of SLURM on one machine for submitit to submit a job, watch it, and requeue it when it is
signalled. ``install(bin_dir)`` writes one executable per command; they keep their state in
``$FAKE_SLURM_DIR``.

- ``sbatch SCRIPT`` prints ``Submitted batch job N`` and runs the script in the background, in
  its own session, with the ``SLURM_*`` variables of a one-task job; a job that was requeued
  while it ran is run again, with ``SLURM_RESTART_COUNT`` one higher, as SLURM does.
- ``srun [--output F] [--error F] [flags] CMD`` runs CMD as the job's one task (``%j``/``%t`` in
  the file names expanded), recording its pid so that ``scancel`` can signal it.
- ``sacct ... -j N`` reports the job's state; ``scontrol requeue N`` marks it for a requeue;
  ``scancel --signal SIG N`` sends SIG to the job's task, as SLURM sends ``--signal`` to steps.

Job arrays are not emulated: submitit makes one only for sweeps of more than one job.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

COMMANDS = ("sbatch", "srun", "sacct", "scontrol", "scancel")


def install(bin_dir: Path) -> None:
    """One executable per SLURM command in ``bin_dir``, each running this file."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in COMMANDS:
        path = bin_dir / name
        path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{__file__}" {name} "$@"\n')
        path.chmod(0o755)


def state_dir() -> Path:
    return Path(os.environ["FAKE_SLURM_DIR"])


def record(line: str) -> None:
    """Every command that changes a job, in order, in ``$FAKE_SLURM_DIR/calls``."""
    with open(state_dir() / "calls", "a") as f:
        f.write(line + "\n")


def job_file(job_id: str, what: str) -> Path:
    return state_dir() / f"{job_id}.{what}"


def sbatch(args: list[str]) -> None:
    script = Path(args[-1])
    text = script.read_text()
    if "#SBATCH --array" in text:
        sys.exit("fake sbatch: job arrays are not emulated")
    counter = state_dir() / "last_id"
    job_id = str(int(counter.read_text()) + 1 if counter.exists() else 1001)
    counter.write_text(job_id)
    job_file(job_id, "state").write_text("PENDING")
    record(f"sbatch {job_id}")
    subprocess.Popen(
        [sys.executable, __file__, "run-job", job_id, str(script)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    print(f"Submitted batch job {job_id}")


def run_job(job_id: str, script: str) -> None:
    """The job's life: run the script, again after each requeue, then its final state."""
    name = re.search(r"^#SBATCH --job-name=(\S+)", Path(script).read_text(), re.M)
    env = {
        **os.environ,
        "SLURM_JOB_ID": job_id,
        "SLURM_JOBID": job_id,
        "SLURM_JOB_NAME": name.group(1) if name else "fake",
        "SLURM_NTASKS": "1",
        "SLURM_NTASKS_PER_NODE": "1",
        "SLURM_NNODES": "1",
        "SLURM_JOB_NUM_NODES": "1",
        "SLURM_NODEID": "0",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_JOB_NODELIST": "localhost",
        "SLURM_SUBMIT_DIR": os.getcwd(),
    }
    restarts = 0
    while True:
        if restarts:
            env["SLURM_RESTART_COUNT"] = str(restarts)
        job_file(job_id, "state").write_text("RUNNING")
        code = subprocess.call(["bash", script], env=env, stdin=subprocess.DEVNULL)
        record(f"exit {job_id} {code}")
        requeue = job_file(job_id, "requeue")
        if not requeue.exists():
            break
        requeue.unlink()
        restarts += 1
        job_file(job_id, "state").write_text("REQUEUED")
    job_file(job_id, "state").write_text("COMPLETED" if code == 0 else "FAILED")


def srun(args: list[str]) -> None:
    env = os.environ
    files = {}
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        if flag in ("--output", "--error"):
            files[flag] = args.pop(0)
    for flag, fd in (("--output", 1), ("--error", 2)):
        if flag in files:
            name = files[flag].replace("%j", env["SLURM_JOB_ID"]).replace("%t", env["SLURM_PROCID"])
            target = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(target, fd)
    job_file(env["SLURM_JOB_ID"], "task").write_text(str(os.getpid()))
    os.execvp(args[0], args)  # the task keeps this pid


def sacct(args: list[str]) -> None:
    print("JobID|State|NodeList")
    for i, arg in enumerate(args[:-1]):
        if arg == "-j":
            state = job_file(args[i + 1], "state")
            print(f"{args[i + 1]}|{state.read_text() if state.exists() else 'PENDING'}|localhost")


def scontrol(args: list[str]) -> None:
    if args[:1] != ["requeue"]:
        sys.exit(f"fake scontrol: only 'requeue' is emulated, not {args}")
    record(f"requeue {args[1]}")
    job_file(args[1], "requeue").touch()


def scancel(args: list[str]) -> None:
    sig, ids = "TERM", []
    while args:
        arg = args.pop(0)
        if arg in ("--signal", "-s"):
            sig = args.pop(0)
        elif arg.startswith("--signal="):
            sig = arg.split("=", 1)[1]
        else:
            ids.append(arg)
    number = getattr(signal, "SIG" + sig.removeprefix("SIG"))
    for job_id in ids:
        record(f"signal {job_id} SIG{sig.removeprefix('SIG')}")
        os.kill(int(job_file(job_id, "task").read_text()), number)


if __name__ == "__main__":
    command, rest = sys.argv[1], sys.argv[2:]
    if command == "run-job":
        run_job(*rest)
    else:
        {"sbatch": sbatch, "srun": srun, "sacct": sacct, "scontrol": scontrol, "scancel": scancel}[
            command
        ](rest)
