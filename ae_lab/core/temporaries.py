"""What a write killed mid-way leaves: the ``.<file>.<pid>.tmp`` that ae_lab's atomic writers
(``ae_lab.core.checkpoints.AtomicCheckpointIO``, ``ae_lab.core.records.atomic_write``) write
before renaming it into place, removed when a run or sweep next starts in that folder."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

log = logging.getLogger(__name__)

# ``.<file>.<writer's pid>.tmp``: what AtomicCheckpointIO and records.atomic_write write first
_TEMPORARY = re.compile(r"\..+\.(\d+)\.tmp")


def _started(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch; Linux), None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        return boot + int(stat[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _stale(path: Path, pid: int) -> bool:
    """Whether no running writer can still finish ``path``: its writer is gone, is this very
    process (an attempt before this one), or the pid now names a process started after it."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    started = _started(pid)
    return started is not None and path.stat().st_mtime < started


def remove_stale_temporaries(*folders: Path) -> list[Path]:
    """Removes what writes killed mid-way left in ``folders`` (the ``.<file>.<pid>.tmp`` of
    ae_lab's atomic writers), so that they do not pile up; returns them. A file whose writer
    may still be writing it is kept."""
    removed = []
    for folder in folders:
        try:
            entries = list(folder.iterdir())
        except OSError:
            continue
        for path in entries:
            found = _TEMPORARY.fullmatch(path.name)
            try:
                if found and path.is_file() and _stale(path, int(found[1])):
                    path.unlink()
                    removed.append(path)
            except OSError:
                continue
    if removed:
        log.info("removed what interrupted writes left: %s", ", ".join(p.name for p in removed))
    return removed
