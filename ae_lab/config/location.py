"""Where Hydra finds ae_lab's configs, in a checkout and in an installed package alike.

The configs live in ``conf/`` at the top of the repository, where developers edit them; building
the package maps that folder into it as ``ae_lab.conf`` (``setup.py``), so a regular
``pip install .`` carries them and ``ae-lab`` runs from any folder. Hydra then reads them as
``pkg://ae_lab.conf``, which also works from a zipped install. A checkout (``python -m ae_lab`` in
the repository, or an editable install) has no ``ae_lab/conf`` and reads ``conf/`` itself.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = "ae_lab.conf"
_PACKAGED = Path(__file__).resolve().parents[1] / "conf"
_CHECKOUT = Path(__file__).resolve().parents[2] / "conf"


def installed() -> bool:
    """Whether this ae_lab carries its configs (a regular install) rather than a checkout's."""
    return (_PACKAGED / "config.yaml").is_file()


def config_dir() -> Path:
    """The configs as a folder on disk: for code and tests that read the YAML files."""
    return _PACKAGED if installed() else _CHECKOUT


def config_path() -> str:
    """``config_path`` for ``hydra.main``: ``pkg://ae_lab.conf`` where the package carries the
    configs, else the checkout's ``conf/``. Either way ``--config-dir`` and ``hydra.searchpath``
    add a user's own folder in front of it."""
    return f"pkg://{PACKAGE}" if installed() else str(_CHECKOUT)
