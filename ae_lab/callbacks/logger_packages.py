"""The package each logger needs, checked before any work: Lightning would only fail once the run
has started. A logger of Lightning's that needs a package ae_lab does not install has its entry in
``LOGGER_PACKAGES``; a logger of its own module needs none, since the check imports that module
and names the package its imports lack (``logger.<key> needs the <package> package...``)."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from importlib import import_module

# the package each logger needs beyond ae_lab's core install, by the class or function name its
# config's _target_ ends in (those of the trackers extra: pip install 'ae_lab[trackers]')
LOGGER_PACKAGES = {
    "MLFlowLogger": "mlflow",
    "mlflow_logger": "mlflow",
    "WandbLogger": "wandb",
    "wandb_logger": "wandb",
    "CometLogger": "comet_ml",
    "LitLogger": "litlogger",
}
TRACKERS_EXTRA = "trackers"
TRACKERS = ("mlflow", "wandb")


def _lacking(target: str) -> str | None:
    """The package ``target``'s logger needs and this Python lacks, or None."""
    name = target.rsplit(".", 1)[-1]
    if name in LOGGER_PACKAGES:
        package = LOGGER_PACKAGES[name]
        return package if importlib.util.find_spec(package) is None else None
    module = target.rpartition(".")[0]
    if not module or importlib.util.find_spec(module.split(".")[0]) is None:
        return None  # no such module: instantiating the logger says so, naming its _target_
    try:
        import_module(module)  # what instantiating it imports a moment later
    except ModuleNotFoundError as error:
        missing = (error.name or "").split(".")[0]
        # its own module missing: instantiating the logger says so, naming its _target_
        return missing if missing and missing != module.split(".")[0] else None
    return None


def missing_packages(targets: Mapping[str, str]) -> list[str]:
    """``logger.<key> needs the <package> package...`` for each logger config (its key: its
    ``_target_``) whose package this Python cannot import."""
    found = []
    for key, target in targets.items():
        if package := _lacking(str(target)):
            extra = f" (or pip install 'ae_lab[{TRACKERS_EXTRA}]')" if package in TRACKERS else ""
            found.append(
                f"logger.{key} needs the {package} package, which this Python lacks: "
                f"pip install {package}{extra}"
            )
    return found
