"""The ``ae-lab`` command (and ``python -m ae_lab``): Hydra's app, with two fixes to the command
line that Hydra's parser would otherwise refuse.

Hydra's parser takes the overrides as one positional list, so a flag between two overrides
(``model=conv_vae -m latent=2,8``) splits that list and argparse rejects the rest as
"unrecognized arguments". Moving ``-m``/``--multirun`` to the front first lets a user add it
wherever it comes to mind, as the README's examples do. Hydra's own errors about the command
line (an unknown key or option) end in one line too (``ae_lab.config.hydra_errors``).

A sweeper's search space (``hydra.sweeper.params.<key>=<expression>``) is text for the sweeper
to parse, but Hydra reads ``choice(8,16,32)`` or ``2,4,8`` there as a sweep of Hydra's own
config and refuses it, wants a ``+`` for a key the config does not have yet, and splits a key
with dots (``optimizer.lr``) into nested keys that the sweeper's schema refuses. Each such
override is therefore passed on as one entry of the mapping, its value quoted:
``++hydra.sweeper.params={optimizer.lr:'interval(1e-4,1e-2)'}``, which adds or replaces it.
"""

from __future__ import annotations

import gc
import importlib.util
import platform
import re
import sys
from collections.abc import Callable
from typing import Any

MULTIRUN_FLAGS = ("-m", "--multirun")
SWEEPER_PARAM = re.compile(
    r"\+{0,2}hydra\.sweeper\.params\.(?P<key>[A-Za-z0-9_.\-]+)=(?P<value>.*)"
)
QUOTES = ("'", '"')
# what `python -m ae_lab` imports first: missing, the wrong Python (or no `make setup`) runs it
NEEDED = ("hydra", "omegaconf", "torch", "lightning")


def hoist_multirun(argv: list[str]) -> list[str]:
    """``argv`` with every ``-m``/``--multirun`` moved to the front, once."""
    rest = [a for a in argv if a not in MULTIRUN_FLAGS]
    return (["--multirun"] if len(rest) < len(argv) else []) + rest


def sweeper_param(arg: str) -> str:
    """A ``hydra.sweeper.params.<key>=<value>`` override as one quoted entry of the mapping that
    Hydra adds or replaces; any other argument as it is."""
    match = SWEEPER_PARAM.fullmatch(arg)
    if match is None:
        return arg
    value = match["value"]
    if not (len(value) >= 2 and value[0] == value[-1] and value[0] in QUOTES):
        quote = next((q for q in QUOTES if q not in value), None)
        if quote is None:  # both quotes inside: Hydra reads it as typed
            return arg
        value = f"{quote}{value}{quote}"
    return f"++hydra.sweeper.params={{{match['key']}:{value}}}"


def prepare_argv(argv: list[str]) -> list[str]:
    """The command line as Hydra's parser takes it (both fixes above); ``ae-lab-eval``'s too."""
    return [sweeper_param(a) for a in hoist_multirun(argv)]


def missing_packages() -> list[str]:
    """The packages ae_lab needs that this Python cannot import (found without importing)."""
    return [name for name in NEEDED if importlib.util.find_spec(name) is None]


def wrong_python_hint(missing: list[str]) -> str:
    return (
        f"ae_lab: this Python ({sys.executable}, {platform.python_version()}) lacks "
        f"{', '.join(missing)}; run `make setup` once, then `.venv/bin/python -m ae_lab` "
        "(or activate .venv)"
    )


def check_python() -> None:
    """One line instead of ``ModuleNotFoundError`` when this Python lacks ae_lab's packages."""
    missing = missing_packages()
    if missing:  # e.g. the system's python3 rather than the project's .venv
        print(wrong_python_hint(missing), file=sys.stderr)
        raise SystemExit(1)


def exit_promptly(run: Callable[[], Any]) -> None:
    """Runs ``run``, then lets the process end as soon as its last line is out."""
    try:
        run()
    finally:
        # Everything is written by now. Without this, Python's last garbage collections at exit
        # walk every object torch, Lightning, scikit-learn and TensorBoard made, several seconds
        # (a minute on a loaded machine) after the run's last line; frozen objects are skipped.
        gc.freeze()


def main() -> None:
    check_python()
    sys.argv[1:] = prepare_argv(sys.argv[1:])
    from ae_lab.run import process

    process.setup()  # before anything imports Lightning: it notes the user's CUDA check
    from ae_lab.config import hydra_errors
    from ae_lab.run.train import main as run

    hydra_errors.install()
    exit_promptly(run)
