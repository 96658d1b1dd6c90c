"""OmegaConf resolvers the configs use; registered on import of ``ae_lab.run.train``."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from omegaconf import OmegaConf

from ae_lab.reporting.identity import DISPLAY_ONLY, override_key, under

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


def run_name(overrides: Iterable[str]) -> str:
    """A job's overrides as typed, e.g. ``model=conv_vae,latent=8``, for its directory and its
    TensorBoard legend entry. Hydra's ``override_dirname`` sorts them; users read them in the
    order they wrote them.

    The name is the job's folder, so it must tell apart every two jobs whose overrides differ in
    anything but how a run is shown: when an override that can change results is left out, the
    name is shortened to ``MAX_NAME_BYTES``, or ``/`` and spaces are replaced, it ends in
    ``@`` and a hash of those overrides. The same overrides give the same name, so a sweep run
    again finds its jobs.
    """
    overrides = list(overrides)
    kept = [o for o in overrides if not override_key(o).startswith(NOT_IN_RUN_NAME)]
    typed = ",".join(kept)
    name = typed.replace("/", "_").replace(" ", "") or "default"
    telling = [o for o in overrides if not under(override_key(o), DISPLAY_ONLY)]
    left_out = any(o not in kept for o in telling)
    if not (left_out or name != (typed or "default") or len(name.encode()) > MAX_NAME_BYTES):
        return name
    digest = hashlib.sha256("\n".join(telling).encode()).hexdigest()[:HASH_CHARS]
    room = MAX_NAME_BYTES - len(digest) - 1
    return name.encode()[:room].decode(errors="ignore") + "@" + digest


def register() -> None:
    if not OmegaConf.has_resolver("run_name"):
        OmegaConf.register_new_resolver("run_name", run_name)
    if not OmegaConf.has_resolver("ae_lab_help"):  # --help's lists (conf/hydra/default.yaml)
        from ae_lab.config import help as help_text

        OmegaConf.register_new_resolver("ae_lab_help", help_text.resolve)
