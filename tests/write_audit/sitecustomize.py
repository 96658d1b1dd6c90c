"""Records which files a Python process writes: loaded at start-up by every process that has this
folder on ``PYTHONPATH`` (the DDP test's processes). With ``AE_LAB_AUDIT_ROOT`` and
``AE_LAB_AUDIT_DIR`` set, each process writes ``<AUDIT_DIR>/<pid>.json`` at exit: its rank
(``LOCAL_RANK``, as Lightning sets it for the processes it starts) and every path under
``AUDIT_ROOT`` it opened for writing or renamed a file onto (Python's audit events)."""

from __future__ import annotations

import atexit
import json
import os
import sys

ROOT = os.environ.get("AE_LAB_AUDIT_ROOT")
OUT = os.environ.get("AE_LAB_AUDIT_DIR")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
written: set[str] = set()


def _record(path: object) -> None:
    if isinstance(path, (str, bytes, os.PathLike)):
        full = os.path.abspath(os.fsdecode(path))
        if full.startswith(str(ROOT) + os.sep):
            written.add(os.path.relpath(full, str(ROOT)))


def _hook(event: str, args: tuple) -> None:
    if event == "open":
        path, mode, flags = args
        writes = any(c in mode for c in "wax+") if isinstance(mode, str) else flags & WRITE_FLAGS
        if writes:
            _record(path)
    elif event == "os.rename":  # os.rename and os.replace: an atomic write's last step
        _record(args[1])


def _report() -> None:
    record = {"rank": os.environ.get("LOCAL_RANK", "0"), "written": sorted(written)}
    with open(os.path.join(str(OUT), f"{os.getpid()}.json"), "w") as f:
        json.dump(record, f)


if ROOT and OUT:
    sys.addaudithook(_hook)
    atexit.register(_report)
