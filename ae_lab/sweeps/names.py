"""Job folder names that show what tells a sweep's jobs apart, not what they all share.

A sweep's job folders are its TensorBoard run names, and TensorBoard's run list and its HPARAMS
table cut long names to the same first characters: ``model=ae,latent=2,trainer.max_epochs=2,...``
and ``model=ae,latent=8,trainer.max_epochs=2,...`` look alike there. So an override that every
job of the sweep has (one value on the command line or in ``hydra.sweeper.params``, not a sweep
such as ``latent=2,8`` or ``choice(...)``) is left out of the names: ``latent=2``, ``latent=8``.
The shared overrides stay where a sweep keeps its settings: ``multirun.yaml``, each job's
``job.json`` and ``.hydra/overrides.yaml``, and the "Overrides of every job" line of
``summary.md``.

Each job composes its own config, so the sweep's process tells the jobs which keys are shared
through the one Hydra setting meant for it, ``hydra.job.config.override_dirname.exclude_keys``,
added to the overrides every job is composed with; ``conf/hydra/default.yaml`` hands it to the
``run_name`` resolver (``ae_lab.config.resolvers``). The same command gives the same shared keys,
so a sweep run again (``hydra.sweep.dir=<that sweep>``) finds its jobs; a sweep in which nothing
varies keeps whole names, since nothing else would tell its job apart.
"""

from __future__ import annotations

import logging
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

log = logging.getLogger(__name__)

EXCLUDE_KEYS = "hydra.job.config.override_dirname.exclude_keys"


def shared_keys(config: DictConfig) -> list[str]:
    """The keys to which the sweep in ``config`` gives every job the same value, in the order
    given; none when nothing is swept. As Hydra's sweepers read them: ``hydra.sweeper.params``
    first, then the command line, the later of two for one key winning."""
    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    lines = [f"{k}={v}" for k, v in params.items()] + list(config.hydra.overrides.task)
    final = {}
    for override in OverridesParser.create().parse_overrides(lines):
        key = override.key_or_group + (f"@{override.package}" if override.package else "")
        final[key] = override
    if not any(o.is_sweep_override() for o in final.values()):
        return []
    return [k for k, o in final.items() if not o.is_sweep_override()]


class ShortJobNames(Callback):
    """Leaves the overrides every job of a sweep shares out of its job folder names."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            shared = shared_keys(config)
        except Exception:  # noqa: BLE001 - names in full rather than no sweep; the sweeper,
            # which parses the same overrides, says what is wrong with them
            log.debug("sweep overrides not parsed; job names keep them all", exc_info=True)
            return
        if not shared:
            return
        # the user's own exclusions, if any, stay excluded
        keys = list(dict.fromkeys([*OmegaConf.select(config, EXCLUDE_KEYS, default=[]), *shared]))
        quoted = ",".join("'" + k.replace("\\", "\\\\").replace("'", "\\'") + "'" for k in keys)
        with read_write(config.hydra), open_dict(config.hydra):
            # every job's config is composed afresh from these overrides (Hydra's
            # ``load_sweep_config``); the sweep's own config, saved as multirun.yaml, shows them too
            config.hydra.overrides.hydra.append(f"{EXCLUDE_KEYS}=[{quoted}]")
            OmegaConf.update(config, EXCLUDE_KEYS, keys, merge=False)
