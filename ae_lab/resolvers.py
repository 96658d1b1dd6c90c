"""OmegaConf resolvers the configs use; registered on import of ``ae_lab.train``."""

from __future__ import annotations

from collections.abc import Iterable

from omegaconf import OmegaConf

# Overrides that say where a run reads or how much of it to show, not what it trains: kept out of
# run names so names stay short and readable.
NOT_IN_RUN_NAME = (
    "data.root",
    "hydra.",
    "trainer.limit_",
    "trainer.enable_",
    "trainer.num_sanity_val_steps",
    "trainer.log_every_n_steps",
)


def run_name(overrides: Iterable[str]) -> str:
    """A job's overrides as typed, e.g. ``model=conv_vae,latent=8``, for its directory and its
    TensorBoard legend entry. Hydra's ``override_dirname`` sorts them; users read them in the
    order they wrote them."""
    kept = [o for o in overrides if not o.lstrip("+~").startswith(NOT_IN_RUN_NAME)]
    name = ",".join(kept).replace("/", "_").replace(" ", "")
    return name or "default"


def register() -> None:
    if not OmegaConf.has_resolver("run_name"):
        OmegaConf.register_new_resolver("run_name", run_name)
