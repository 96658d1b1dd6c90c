"""Ships ``conf/`` inside the package as ``ae_lab.conf`` (``ae_lab.config.location``).

Everything else about the package is in ``pyproject.toml``. The configs stay at the top of the
repository, where the developers' guide keeps them; only this mapping, which ``pyproject.toml``
cannot express beside package discovery, lives here. Every folder of ``conf/`` is named as a
(data-only) package so that setuptools copies its YAML files.
"""

from setuptools import find_namespace_packages, setup

CONFIGS = ["ae_lab.conf", *(f"ae_lab.conf.{p}" for p in find_namespace_packages(where="conf"))]

setup(
    # hydra_plugins/ae_lab: the sweeper of hparams_search=optuna (Hydra finds sweepers only there)
    packages=[*find_namespace_packages(include=["ae_lab*", "hydra_plugins*"]), *CONFIGS],
    package_dir={"ae_lab.conf": "conf"},
    package_data={p: ["*.yaml"] for p in CONFIGS},
)
