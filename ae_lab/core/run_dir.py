"""The folder a run or a sweep writes to: made up front, so that one that cannot be made ends in
one line naming the key that sets it; and, for a single run that a config error stopped, removed
again, so that a typo leaves no ``outputs/<date>/<time>/`` behind to clutter TensorBoard.

Hydra makes a run's folder and writes its start-up files (``.hydra/``, the log) before ae_lab's
checks can run: they need the run's resolved config, whose ``${hydra:runtime.output_dir}`` exists
only then. So the folder is removed afterwards, and only when this run made it and it holds nothing
but those start-up files and ``job.json``; a folder that existed before is never touched.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from omegaconf import DictConfig

from ae_lab.core import records
from ae_lab.core.errors import ConfigError, exit_with


def _name_max(folder: Path) -> int:
    """The longest folder name, in bytes, that the file system under ``folder`` takes."""
    existing = next((p for p in (folder, *folder.parents) if os.path.isdir(p)), Path("/"))
    try:
        return os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def too_long(path: str, key: str) -> str | None:
    """The one line for a ``path`` with a folder name longer than its file system takes (most
    take 255 bytes), which would otherwise fail as ``ENAMETOOLONG`` deep inside a library."""
    folder = Path(os.path.abspath(path))
    limit = _name_max(folder)
    for part in folder.parts:
        size = len(os.fsencode(part))
        if size > limit:
            short = part if len(part) <= 40 else f"{part[:20]}...{part[-12:]}"
            return (
                f"{key} has a folder name of {size} bytes ({short}); the file system takes at "
                f"most {limit}. Give a shorter {key}"
            )
    return None


def make(path: str, key: str) -> Path | None:
    """Makes the folder ``path`` and its missing parents; returns the outermost folder it made
    (None when ``path`` existed). One that cannot be made ends the process with one line."""
    if problem := too_long(path, key):
        exit_with(problem, ConfigError.exit_code)
    folder = Path(os.path.abspath(path))  # as Hydra makes it
    try:
        made = next((p for p in (*reversed(folder.parents), folder) if not p.exists()), None)
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        where = f" ({err.filename})" if err.filename and str(err.filename) != path else ""
        exit_with(
            f"{key}={path} cannot be created: {err.strerror or err}{where}", ConfigError.exit_code
        )
    return made


def claim(path: str, key: str) -> tuple[Path, Path | None]:
    """Makes ``path`` for this run alone: when another run (started in the same second) has
    made it already, ``<path>-1``, ``<path>-2``, ... instead; each is made with one ``mkdir``,
    which only one process can win. Returns the folder and the outermost folder it made, as
    ``make``; a folder that cannot be made ends the process with one line."""
    base = Path(os.path.abspath(path))
    made = make(str(base.parent), key)
    for n in range(10_000):
        folder = base if n == 0 else base.with_name(f"{base.name}-{n}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        except OSError as err:
            exit_with(
                f"{key}={path} cannot be created: {err.strerror or err}", ConfigError.exit_code
            )
        return folder, made or folder
    exit_with(f"{key}={path}: every folder of that name is taken", ConfigError.exit_code)


def startup_files(config: DictConfig) -> set[str]:
    """What a run has written to its folder before ae_lab's checks: Hydra's ``.hydra/`` and log,
    and the run's ``job.json``."""
    hydra = config.hydra
    return {str(hydra.output_subdir), f"{hydra.job.name}.log", records.JOB_FILE}


def remove_after_config_error(config: DictConfig, made: Path | None, err: BaseException) -> None:
    """Removes the folder of a single run that ``err``, a config error, stopped before any work,
    and the parents made with it, when this run made it and it holds only start-up files."""
    if made is None or not isinstance(err, ConfigError):
        return
    folder = Path(config.hydra.runtime.output_dir)
    if folder != made and made not in folder.parents:
        return
    try:
        if any(p.name not in startup_files(config) for p in folder.iterdir()):
            return
        shutil.rmtree(folder)
        for parent in folder.parents:
            if made not in (parent, *parent.parents):
                break
            parent.rmdir()  # only when empty: another run may have started beside this one
    except OSError:  # what is left is a few small files, not worth a second error
        return
