"""The errors a user can act on, and how a run reports them: one message, no traceback.

``AeLabError`` is for problems outside ae_lab's code (a setting out of range, a missing or
damaged file, no GPU, a diverging loss); its message says what is wrong and what to do. A bug is
any other exception and keeps its traceback. ``HYDRA_FULL_ERROR=1`` shows the traceback of either.

It derives from Hydra's ``CompactHydraException`` because that is how Hydra knows to print a
failed sweep job's error as its message alone when the sweep ends.
"""

from __future__ import annotations

import difflib
import errno
import os
import sys
from collections.abc import Iterable
from typing import NoReturn

from hydra.errors import CompactHydraException


class AeLabError(CompactHydraException):
    """A failure the user can fix; the message is the whole report."""

    exit_code = 1


class ConfigError(AeLabError):
    """A setting out of range, found before any work starts."""

    exit_code = 2


class DiskFull(AeLabError, OSError):
    """A write the disk had no room for; the file it would have replaced is still whole. An
    ``OSError`` still, for code that handles those."""


def disk_full(err: BaseException, path: object) -> DiskFull | None:
    """``err`` as ``DiskFull`` when it is a write that found no space (or quota) left on the
    device for ``path``; None for any other error."""
    if not (isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)):
        return None
    return DiskFull(
        f"no space left on device writing {path} (a file there from before is kept whole); "
        "free some space, then run again (ckpt_path=last continues a single run)"
    )


def one_line(err: BaseException) -> str:
    """The error as one line for ``job.json`` and sweep summaries; a bug keeps its type name."""
    text = "; ".join(line.strip() for line in str(err).splitlines() if line.strip())
    return text if isinstance(err, AeLabError) else f"{type(err).__name__}: {text}"


def closest(word: object, names: Iterable[str]) -> str | None:
    """The name ``word`` is most likely a typo of, if any is close."""
    close = difflib.get_close_matches(word, list(names), n=1) if isinstance(word, str) else []
    return close[0] if close else None


def did_you_mean(word: object, names: Iterable[str]) -> str:
    """`` (did you mean <the closest of names>?)`` for a near miss, else nothing."""
    close = closest(word, names)
    return f" (did you mean {close}?)" if close else ""


def full_error_wanted() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR", "") == "1"


def exit_with(message: str, code: int) -> NoReturn:
    """``ae_lab: <message>`` on stderr and the exit status, as the last thing the process does."""
    sys.stderr.write(f"ae_lab: {message}\n")
    sys.stderr.flush()
    raise SystemExit(code)
