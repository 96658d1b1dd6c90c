"""The ``ae-lab`` command (and ``python -m ae_lab``): Hydra's app, with ``-m`` accepted anywhere.

Hydra's parser takes the overrides as one positional list, so a flag between two overrides
(``model=conv_vae -m latent=2,8``) splits that list and argparse rejects the rest as
"unrecognized arguments". Moving ``-m``/``--multirun`` to the front first lets a user add it
wherever it comes to mind, as the README's examples do. Hydra's own errors about the command
line (an unknown key or option) end in one line too (``ae_lab.hydra_errors``).
"""

from __future__ import annotations

import sys

MULTIRUN_FLAGS = ("-m", "--multirun")


def hoist_multirun(argv: list[str]) -> list[str]:
    """``argv`` with every ``-m``/``--multirun`` moved to the front, once."""
    rest = [a for a in argv if a not in MULTIRUN_FLAGS]
    return (["--multirun"] if len(rest) < len(argv) else []) + rest


def main() -> None:
    sys.argv[1:] = hoist_multirun(sys.argv[1:])
    from ae_lab import hydra_errors
    from ae_lab.train import main as run

    hydra_errors.install()

    run()
