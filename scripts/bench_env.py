"""Where the benchmarks run: this checkout (first on the path, for its ae_lab), the environment
the benchmark was started with, and the machine's description.

Imported before anything imports Lightning: importing Lightning sets
``PYTORCH_NVML_BASED_CUDA_CHECK``, which the runs a benchmark starts must not inherit, so the
environment is kept as it was at launch (``LAUNCH_ENV``).
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import version
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's ae_lab, also for the in-process classic loop
LAUNCH_ENV = dict(os.environ)


def env(root: str) -> dict[str, str]:
    path = os.pathsep.join([str(REPO), str(REPO / "scripts"), os.environ.get("PYTHONPATH", "")])
    return {**LAUNCH_ENV, "AE_LAB_DATA_DIR": root, "PYTHONPATH": path, "HYDRA_FULL_ERROR": "1"}


def hardware() -> str:
    from ae_lab.core.hardware import cpu_name

    gpu = f"GPU: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "no GPU"
    versions = f"torch {torch.__version__}, lightning {version('lightning')}"
    return f"{cpu_name()}, {os.cpu_count()} cores; {versions}; {gpu}"
