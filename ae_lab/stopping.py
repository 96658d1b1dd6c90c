"""The command that continues a stopped run.

The command printed after Ctrl-C or SIGTERM names the run or sweep directory; it is quoted for
Hydra and then for the shell, so that a directory with spaces, commas or quotes can be pasted.
"""

from __future__ import annotations

import re
import shlex

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.types import Quote, QuotedString
from hydra.types import RunMode

# paths Hydra reads back unchanged without quotes: a "/" keeps them from reading as a number,
# a boolean or null; Hydra's quotes take care of the rest
_PLAIN_PATH = re.compile(r"[\w.+-]*/[\w./+-]*")


def shell_override(key: str, value: str) -> str:
    """``key=value`` as one shell word that Hydra parses back to ``value``."""
    if not _PLAIN_PATH.fullmatch(value):
        value = QuotedString(text=value, quote=Quote.double).with_quotes()
    return shlex.quote(f"{key}={value}")


def how_to_continue() -> str:
    """The overrides that continue this run (or sweep) where it stopped."""
    if not HydraConfig.initialized():
        return "ckpt_path=last"
    hydra = HydraConfig.get()
    if hydra.mode == RunMode.MULTIRUN:
        return f"the same command with {shell_override('hydra.sweep.dir', hydra.sweep.dir)}"
    run_dir = shell_override("hydra.run.dir", hydra.runtime.output_dir)
    return f"the same command with {run_dir} ckpt_path=last"
