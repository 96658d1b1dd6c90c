"""The process a run runs in: what is set once before a config is composed (``setup``), and what a
run sets for its process (threads, the CUDA check).

Importing a module of ae_lab only defines things, so a program that imports one (a notebook, a
script, a test) keeps its own warning filters, environment and threads. The programs that run
ae_lab call ``setup`` instead: the ``ae-lab`` and ``ae-lab-eval`` commands before Hydra starts,
ae_lab's Hydra plugins as Hydra builds them, and the task functions as a job starts, which covers
the fresh processes Hydra's launchers (joblib, submitit, Ray) run jobs in. It may run any number of
times.
"""

from __future__ import annotations

import logging
import os
import warnings

from omegaconf import DictConfig

log = logging.getLogger(__name__)
CUDA_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"
_UNREAD = object()
# the user's CUDA_CHECK as it was before Lightning set it (see use_default_cuda_check)
_user_cuda_check: object = _UNREAD


def setup() -> None:
    """Registers the configs' resolvers, leaves out warnings no user can act on, and notes the
    user's CUDA check before anything imports Lightning, which sets it."""
    global _user_cuda_check
    from ae_lab.config import resolvers

    if _user_cuda_check is _UNREAD:
        _user_cuda_check = os.environ.get(CUDA_CHECK)
    resolvers.register()
    # Lightning's own use of a deprecated torch API; nothing a user can act on.
    warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated")
    # Hydra's, for conf/hydra/launcher/submitit_*.yaml, named as the plugin's schemas that still
    # check their keys; nothing a user can act on.
    warnings.filterwarnings("ignore", message="(?s).*is validated against ConfigStore schema")


def user_cuda_check() -> str | None:
    """The user's CUDA check: as ``setup`` found it, or as it is now where ``setup`` has not run."""
    if _user_cuda_check is _UNREAD:
        return os.environ.get(CUDA_CHECK)
    return _user_cuda_check  # type: ignore[return-value]


def use_default_cuda_check() -> None:
    """Undoes, for a run on the CPU, the CUDA check Lightning switches on when imported.

    Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` so that asking whether CUDA is available
    does not initialise it before processes fork. torch's Adam asks on every ``step()``, and with
    that setting a CUDA build of torch without a GPU tries to load the NVIDIA management library
    each time: 40 us per check in isolation, about 200 us per step in a training loop here, a
    tenth of a small model's step (docs/benchmarks.md). A CPU run has chosen its device and starts
    no CUDA processes, so it goes back to torch's own check (2 us). A value the user set is kept.
    """
    if user_cuda_check() is None:
        os.environ.pop(CUDA_CHECK, None)


def set_threads(n: int) -> None:
    """Caps torch's intra-op threads *and* the BLAS/OpenMP pools (NumPy, scikit-learn's PCA).

    Threads beyond the free cores do not just idle: they spin-wait on each other, and a small model
    or a PCA fit then runs several times slower. Parallel sweeps give each job its share this way.
    """
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(n)
    threadpool_limits(limits=n)


def run_threads(cfg: DictConfig) -> int:
    """``threads`` where set (the user's, or a sweep's per job); else the cores free to this
    process (``hardware.default_threads``, logged in one line), shared among the processes a
    multi-device run starts on this machine. torch's own default, one thread per core, takes
    cores other jobs are using and then runs several times slower than one thread."""
    if cfg.get("threads"):
        return int(cfg.threads)
    from ae_lab.core import hardware

    choice = hardware.default_threads()
    devices = cfg.get("trainer", {}).get("devices")
    processes = devices if isinstance(devices, int) and devices > 1 else 1
    threads = max(1, choice.threads // processes)
    log.info(choice.describe(threads, processes))
    return threads
