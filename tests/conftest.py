"""Shared fixtures: tiny synthetic MNIST-format files for unit tests, the real MNIST for
integration tests, and a helper that runs the entrypoint in a subprocess exactly as a user would."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ae_lab.data.files import RAW_FILES as RAW_NAMES

REPO = Path(__file__).resolve().parents[1]
# every autoencoder config in conf/model/
AUTOENCODERS = (
    "ae",
    "deep_ae",
    "conv_ae",
    "sparse_ae",
    "contractive_ae",
    "vae",
    "conv_vae",
    "beta_vae",
)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Writes an array in the IDX format of the MNIST files (big-endian sizes, uint8 data)."""
    magic = 0x0800 | array.ndim
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic))
        f.write(struct.pack(f">{array.ndim}I", *array.shape))
        f.write(array.astype(np.uint8).tobytes())


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Digit-like images: label k lights a bar at a k-dependent place, plus noise, so the
    classes are learnable and the images are not constant."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 40, (n, 28, 28))
    for i, k in enumerate(labels):
        images[i, 4 + 2 * k : 7 + 2 * k, 4:24] = 255
    return images.astype(np.uint8), labels.astype(np.uint8)


def write_mnist(
    root: Path, n_train: int = 600, n_test: int = 200, folder: str = "MNIST", seed: int = 1
) -> Path:
    """Synthetic training and test files under ``root/<folder>/raw``: torchvision's layout of
    MNIST, and of Fashion-MNIST (``folder="FashionMNIST"``) and KMNIST (``"KMNIST"``), whose files
    have MNIST's names and format; another ``seed``, other images."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for train, n, draw in ((True, n_train, seed), (False, n_test, seed + 1)):
        images, labels = synthetic_digits(n, draw)
        write_idx(raw / RAW_NAMES[train][0], images)
        write_idx(raw / RAW_NAMES[train][1], labels)
    return root


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root with 600 training and 200 test images in torchvision's MNIST layout."""
    return write_mnist(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """The real MNIST: $AE_LAB_DATA_DIR, else ../shared/data beside the checkout."""
    root = Path(os.environ.get("AE_LAB_DATA_DIR", REPO.parent / "shared" / "data")).resolve()
    if not (root / "MNIST" / "raw" / RAW_NAMES[True][0]).exists():
        pytest.fail(f"integration tests need the real MNIST under {root}/MNIST/raw")
    return root


def ae_lab_command(
    *overrides: str,
    data_root: Path,
    full_error: bool = True,
    entry: tuple[str, ...] = ("-m", "ae_lab"),
) -> dict:
    """``subprocess`` arguments for ``python -m ae_lab <overrides>`` with this checkout's package
    first on path; ``full_error=False`` shows what a user sees (no ``HYDRA_FULL_ERROR``);
    ``entry`` replaces ``-m ae_lab`` (e.g. with ``-c`` and the console script's code)."""
    env = {
        **os.environ,
        "AE_LAB_DATA_DIR": str(data_root),
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "HYDRA_FULL_ERROR": "1" if full_error else "0",
    }
    return {"args": [sys.executable, *entry, *overrides], "env": env}


def run_ae_lab(
    *overrides: str,
    cwd: Path,
    data_root: Path,
    check: bool = True,
    timeout: int = 600,
    full_error: bool = True,
    entry: tuple[str, ...] = ("-m", "ae_lab"),
) -> subprocess.CompletedProcess:
    """``python -m ae_lab <overrides>`` in ``cwd``, as a user would run it."""
    proc = subprocess.run(
        **ae_lab_command(*overrides, data_root=data_root, full_error=full_error, entry=entry),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"ae_lab {' '.join(overrides)} exited {proc.returncode}:\n{proc.stderr[-4000:]}"
        )
    return proc


# Tiny limits for entrypoint runs: enough to exercise fit, validation, test and every callback.
TINY = (
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "trainer.num_sanity_val_steps=0",
    "trainer.enable_progress_bar=false",
)


def scalars(run_dir: Path) -> dict[str, list[float]]:
    """Every TensorBoard scalar under ``run_dir``, by tag, in step order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[float]] = {}
    for events in sorted(run_dir.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend(e.value for e in acc.Scalars(tag))
    return out


@pytest.fixture
def batch() -> dict[str, torch.Tensor]:
    """A fixed batch of 16 synthetic digits in the datamodule's format."""
    images, labels = synthetic_digits(16, seed=3)
    x = torch.from_numpy(images).float().div(255).unsqueeze(1)
    return {"input": x, "target": x.clone(), "label": torch.from_numpy(labels).long()}
