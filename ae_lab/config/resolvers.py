"""OmegaConf resolvers the configs use; registered by ``ae_lab.run.process.setup``."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from ae_lab.core.identity import DISPLAY_ONLY, override_key, under
from ae_lab.data.root import default_root

# Overrides that say where a run reads or how much of it to show, not what it trains: kept out of
# run names so names stay short and readable.
NOT_IN_RUN_NAME = (
    "data.root",
    "debug",  # a debug preset (debug=tiny) sets trainer.limit_*, also left out
    "hydra.",
    "trainer.limit_",
    "trainer.enable_",
    "trainer.num_sanity_val_steps",
    "trainer.log_every_n_steps",
)
# Bytes of a run name; file systems allow 255 for a folder name, which leaves room for a suffix
# such as ``.superseded-1``.
MAX_NAME_BYTES = 150
HASH_CHARS = 8


def run_name(overrides: Iterable[str], shared: Iterable[str] = ()) -> str:
    """A job's overrides as typed, e.g. ``model=conv_vae,latent=8``, for its directory and its
    TensorBoard run name. Hydra's ``override_dirname`` sorts them; users read them in the
    order they wrote them.

    ``shared``: the keys every job of the sweep has the same value for
    (``ae_lab.sweeps.names``), left out so that names show what tells the jobs apart. Of the
    rest, ``NOT_IN_RUN_NAME`` is left out too unless nothing else is left.

    The name is the job's folder, so it must tell apart every two jobs whose overrides differ in
    anything but how a run is shown: when an override that can change results (and that not
    every job shares) is left out, the name is shortened to ``MAX_NAME_BYTES``, or ``/`` and
    spaces are replaced, it ends in ``@`` and a hash of those overrides. The same overrides give
    the same name, so a sweep run again finds its jobs.
    """
    shared = set(shared)
    overrides = [o for o in overrides if override_key(o) not in shared]
    telling = [o for o in overrides if not under(override_key(o), DISPLAY_ONLY)]
    # a sweep over, say, trainer.limit_train_batches is told apart by it
    kept = [o for o in overrides if not override_key(o).startswith(NOT_IN_RUN_NAME)] or telling
    typed = ",".join(kept)
    name = typed.replace("/", "_").replace(" ", "") or "default"
    left_out = any(o not in kept for o in telling)
    if not (left_out or name != (typed or "default") or len(name.encode()) > MAX_NAME_BYTES):
        return name
    digest = hashlib.sha256("\n".join(telling).encode()).hexdigest()[:HASH_CHARS]
    room = MAX_NAME_BYTES - len(digest) - 1
    return name.encode()[:room].decode(errors="ignore") + "@" + digest


def path_name(path: str) -> str:
    """The last part of a path: a run folder's name, which loggers that keep their runs elsewhere
    (MLflow, W&B) show as the run's name, as TensorBoard does."""
    return Path(path).name


def file_sha256(path: str | None) -> str | None:
    """``sha256:<hex>`` of the file at ``path`` (None for none), read in blocks: a checkpoint's
    content, which an evaluation's identity holds (conf/eval.yaml) so that a checkpoint retrained
    at the same path is evaluated again and an unchanged one, wherever it lies, is not. A missing
    file raises; ``ae-lab-eval`` says so before this is read."""
    if path is None:
        return None
    digest = hashlib.sha256()
    with open(Path(str(path)).expanduser(), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def tracker_run_name(output_dir: str, mode: object, overrides: Iterable[str], model: str) -> str:
    """What MLflow and W&B call a run, as TensorBoard does: a sweep job's folder name (its
    overrides, ``model=conv_vae,latent=8``); for a single run, whose folder is named by the time,
    its overrides as a sweep job's are named, the logger choice and the checkpoint left out (every
    run of the store has the one; a resumed or evaluated run is named by what it is, not by its
    file), or the model's config name (``ae``) when it has none."""
    if str(mode).endswith("MULTIRUN"):
        return path_name(output_dir)
    overrides = list(overrides)
    left_out = [k for k in map(override_key, overrides) if under(k, ("logger", "ckpt_path"))]
    name = run_name(overrides, left_out)
    return model if name == "default" else name


def image_shape(dataset: str) -> list[int] | None:
    """``data.image_shape`` of a named dataset: its definition's (C, H, W), the one home of that
    fact; every model and evaluation is built for the shape the data config states. None for a
    name that is no dataset: ``data.dataset``'s own check names that mistake."""
    from ae_lab.data.definition import dataset_names, definition

    return list(definition(dataset).image_shape) if dataset in dataset_names() else None


def sized_shape(channels: Any, image_size: Any) -> list[int] | None:
    """``data.image_shape`` of data whose config sets its shape (``conf/data/folder.yaml``):
    [channels, height, width]; None for values out of range, which their own rules name."""
    from ae_lab.data.definition import sized_shape as shape

    return shape(channels, image_size)


def register() -> None:
    if not OmegaConf.has_resolver("run_name"):
        OmegaConf.register_new_resolver("run_name", run_name)
    if not OmegaConf.has_resolver("ae_lab_data_root"):  # data.root's default (conf/data/mnist.yaml)
        OmegaConf.register_new_resolver("ae_lab_data_root", default_root)
    if not OmegaConf.has_resolver("ae_lab_image_shape"):  # data.image_shape (conf/data/*.yaml)
        OmegaConf.register_new_resolver("ae_lab_image_shape", image_shape)
    if not OmegaConf.has_resolver("ae_lab_sized_shape"):  # data.image_shape (conf/data/folder.yaml)
        OmegaConf.register_new_resolver("ae_lab_sized_shape", sized_shape)
    if not OmegaConf.has_resolver("path_name"):
        OmegaConf.register_new_resolver("path_name", path_name)
    if not OmegaConf.has_resolver("file_sha256"):
        OmegaConf.register_new_resolver("file_sha256", file_sha256)
    if not OmegaConf.has_resolver("tracker_run_name"):
        OmegaConf.register_new_resolver("tracker_run_name", tracker_run_name)
    if not OmegaConf.has_resolver("ae_lab_help"):  # --help's lists (conf/hydra/default.yaml)
        from ae_lab.config import help as help_text

        OmegaConf.register_new_resolver("ae_lab_help", help_text.resolve)
