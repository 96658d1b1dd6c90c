"""The machine a run is on: the CPU a figure was measured on, for the pages that publish figures
(results, bench), and the threads a run takes when ``threads`` is unset."""

from __future__ import annotations

import functools
import math
import os
import platform
from dataclasses import dataclass
from pathlib import Path

# a cgroup v2 CPU quota: "<quota> <period>" in microseconds, or "max <period>" for none
CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@dataclass(frozen=True)
class ThreadChoice:
    """The intra-op thread count a run takes when ``threads`` is unset, and what it came from."""

    threads: int
    cores: int  # the cores this process may run on
    load: float  # the machine's 1-minute load average when the choice was made
    launcher: int | None  # OMP_NUM_THREADS: a launcher's (or the user's) share per job

    def describe(self, threads: int | None = None, processes: int = 1) -> str:
        """One log line: the count a run took (``threads``, default this choice's) and why."""
        share = f", {self.launcher} per job by OMP_NUM_THREADS" if self.launcher else ""
        split = f", shared by {processes} processes" if processes > 1 else ""
        return (
            f"torch threads: {threads or self.threads} ({self.cores} cores, load average "
            f"{self.load:.1f}{share}{split}; threads=N sets them)"
        )


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity, within a cgroup CPU quota (a
    container's ``--cpus``), which ``os.cpu_count`` and torch's default both ignore."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    try:
        quota, period = CPU_MAX.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.floor(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


@functools.cache
def default_threads() -> ThreadChoice:
    """The threads a run takes when ``threads`` is unset: the cores free to this process, never
    more than its share where a launcher set one (``OMP_NUM_THREADS``), never fewer than 1.

    Free cores are the usable ones less the machine's other load (the 1-minute load average,
    rounded to the nearest core). Threads beyond the free cores spin-wait on each other: torch's
    default (one per core) ran an epoch 3.6x slower than one thread beside other jobs
    (docs/benchmarks.md), while one thread instead of two on an idle machine costs at most 2x.
    Decided once per process, before its first run loads the machine itself: the jobs of a
    sequential sweep share one process and so one count."""
    cores = usable_cores()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    machine = os.cpu_count() or cores
    free = min(cores, math.floor(machine - load + 0.5))
    env = os.environ.get("OMP_NUM_THREADS", "")
    launcher = int(env) if env.isdigit() and int(env) >= 1 else None
    threads = max(1, min(free, launcher or cores))
    return ThreadChoice(threads, cores, load, launcher)
