"""File locks: one for work that parallel sweep jobs share (a download, a cached model), one that
marks a sweep folder as being run by its driver, and one that each job of a sweep shares while it
runs (``ae_lab.sweeps.sweep_lock``)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock held while the block runs, so parallel jobs do shared work once."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    with open(path, "rb") as handle:  # a lock needs no write access: a read-only copy will do
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def hold(path: Path, stamp: str | None = None) -> IO[str] | None:
    """Takes the lock on ``path`` without waiting and writes ``stamp`` into it (by default this
    process's pid and host); None when another process holds it, exclusively or shared. The
    returned open file is the lock: it lasts until the file is closed or the process ends, however
    it ends (a kill -9 too), and processes that this one starts do not inherit it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - the open file is what holds the lock
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(stamp if stamp is not None else f"{os.getpid()} {socket.gethostname()}\n")
    handle.flush()
    return handle


def share(path: Path) -> IO[str]:
    """A shared lock on ``path``, which any number of processes hold at once and which keeps
    ``hold`` from taking it. It waits while ``hold``'s holder has it (a driver holds it only for
    the moment it checks that no job shares it); like ``hold``'s, it lasts until the returned
    file is closed or the process ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - the open file is what holds the lock
    fcntl.flock(handle, fcntl.LOCK_SH)
    return handle


def holder(path: Path) -> str:
    """Who holds the lock on ``path``, as ``hold`` wrote it: ``pid N`` or ``pid N on host``."""
    try:
        pid, _, host = path.read_text().strip().partition(" ")
    except OSError:
        return "pid unknown"
    return f"pid {pid or 'unknown'}" + (
        f" on {host}" if host and host != socket.gethostname() else ""
    )
