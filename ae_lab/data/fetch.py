"""A dataset's files found, or downloaded by torchvision, one job at a time; what every reader
of downloaded files shares (``ae_lab/data/formats/``): the download lock, the clean-up of a
failed download, and the one-line messages for a missing or a damaged file."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from ae_lab.core.errors import AeLabError
from ae_lab.data.definition import DatasetDefinition

log = logging.getLogger(__name__)


def torchvision_class(data: DatasetDefinition) -> type:
    import torchvision.datasets

    return getattr(torchvision.datasets, str(data.torchvision_class))


def ensure(
    data: DatasetDefinition,
    root: Path,
    layout: str,
    missing: Callable[[], bool],
    get: Callable[[], None] | None,
    download: bool,
) -> None:
    """Makes sure the files are there: ``missing()`` says whether they are; ``get()`` downloads
    them (torchvision) into ``root/<data.folder>`` (None: ae_lab cannot); ``layout`` is where
    they lie under ``root`` (torchvision's layout, e.g. ``MNIST/raw``), for messages.

    Raises one readable error naming the place it looked and the two ways to point at a copy,
    instead of torchvision's download traceback, which is all an offline user would otherwise
    see. Parallel jobs download one at a time, so none reads a file another is still writing.
    """
    lock = root / data.folder / ".download.lock"  # there while a download runs, here or elsewhere
    if missing() and get is None:
        why = "ae_lab cannot download them (the definition names no torchvision class)"
        raise missing_error(data, root, layout, why)
    if missing() and not download:
        raise missing_error(data, root, layout, "download is off (data.download=false)")
    if get is None or not (missing() or lock.exists()):
        return
    made = [p for p in (root / data.folder, root) if not p.exists()]  # removed if left empty
    try:
        with _download_lock(lock):  # a download in progress finishes before its files are read
            if missing():
                log.info("%s not found under %s; downloading it", data.name, root)
                _download(root / data.folder, get)
    except BaseException as err:  # noqa: BLE001 - any download failure means the same to the user
        for folder in made:  # a Ctrl-C during the download too
            with contextlib.suppress(OSError):  # only when empty: another job may fill it
                folder.rmdir()
        if not isinstance(err, Exception):
            raise
        lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [""]
        why = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"
        raise missing_error(data, root, layout, f"the download failed: {why}") from err


def _download(folder: Path, get: Callable[[], None]) -> None:
    """torchvision's download into ``folder``; one that fails takes back every file and folder it
    made (partial archives, files of a half-done download, an empty ``raw/``), so the next try,
    or a copy put there by hand, starts from what was there before."""
    before = set(folder.rglob("*"))
    try:
        get()
    except BaseException:
        for path in sorted(set(folder.rglob("*")) - before, key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):  # deepest first: a folder's files, then the folder
                if path.is_dir() and not path.is_symlink():
                    path.rmdir()
                else:
                    path.unlink()
        raise


@contextlib.contextmanager
def _download_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on the file ``path``, removed when the block ends so that the data
    folder keeps no lock file. A job that waited on a file removed meanwhile (or whose folder a
    failed download removed) takes the lock again on the file now at ``path``. Opening needs no
    write access: a read-only copy holding a lock file an older version left is still read."""
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
        except FileNotFoundError:  # its folder was removed between the two calls
            continue
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            current = os.stat(path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(fd).st_ino:
            break
        os.close(fd)  # the lock of a file no longer at ``path``: the job before removed it
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # a read-only folder keeps it, harmlessly
            path.unlink()
        os.close(fd)  # closing releases the lock


def missing_error(data: DatasetDefinition, root: Path, layout: str, why: str) -> AeLabError:
    return AeLabError(
        f"{data.name} files not found in {root.resolve() / layout} and {why}. "
        f"Point ae_lab at a folder that holds {layout}/ (torchvision's layout) with "
        "AE_LAB_DATA_DIR=/path/to/data or the override data.root=/path/to/data."
    )


def damaged_error(data: DatasetDefinition, path: str | Path, why: str) -> AeLabError:
    return AeLabError(
        f"{data.name} file {path} is damaged: {why}. Delete it to have it downloaded again, or "
        "point AE_LAB_DATA_DIR / data.root at a good copy."
    )
