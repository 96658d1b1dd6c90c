"""MNIST as a LightningDataModule, read by torchvision and served from one resident tensor."""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import struct
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torchvision.datasets import MNIST

from ae_lab.data.loader import TensorBatchLoader
from ae_lab.data.transforms import Corruption, NoCorruption
from ae_lab.errors import AeLabError
from ae_lab.locks import file_lock

log = logging.getLogger(__name__)


RAW_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# The official files, decompressed: their image count and MD5 sum. (torchvision's own sums are
# those of the .gz archives, which it deletes after extracting them.)
OFFICIAL = {
    "train-images-idx3-ubyte": (60_000, "6bbc9ace898e44ae57da46a324031adb"),
    "train-labels-idx1-ubyte": (60_000, "a25bea736e30d166cdddb491f175f624"),
    "t10k-images-idx3-ubyte": (10_000, "2646ac647ad5339dbf082846283269ea"),
    "t10k-labels-idx1-ubyte": (10_000, "27ae3e4e09519cfbb04c329615203637"),
}


def load_mnist(root: str | Path, train: bool, download: bool = True) -> MNIST:
    """Opens torchvision's MNIST under ``root`` (files in ``root/MNIST/raw``), downloading if asked.

    Raises one readable error naming the place it looked and the two ways to point at a copy,
    instead of torchvision's download traceback, which is all an offline user would otherwise see;
    and one naming the damaged file when a file is truncated or altered. Parallel jobs download
    one at a time, so none reads a file another is still writing.
    """
    root = Path(root).expanduser()
    raw = root / "MNIST" / "raw"
    lock = root / "MNIST" / ".download.lock"  # left by a download, here or in a parallel job

    def missing() -> bool:
        return not all((raw / name).is_file() for name in RAW_FILES[train])

    if missing() and not download:
        raise _missing(root, "download is off (data.download=false)")
    if missing() or lock.exists():
        try:
            with file_lock(lock):  # a download in progress finishes before its files are read
                if missing():
                    log.info("MNIST not found under %s; downloading it with torchvision", root)
                    MNIST(str(root), train=train, download=True)
        except Exception as err:  # noqa: BLE001 - any download failure means the same to the user
            lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [""]
            why = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"
            raise _missing(root, f"the download failed: {why}") from err
    for name in RAW_FILES[train]:
        path = raw / name
        stat = path.stat()
        check_raw_file(str(path), stat.st_size, stat.st_mtime_ns)
    return MNIST(str(root), train=train, download=False)


def _missing(root: Path, why: str) -> AeLabError:
    return AeLabError(
        f"MNIST files not found in {root.resolve() / 'MNIST' / 'raw'} and {why}. "
        "Point ae_lab at a folder that holds MNIST/raw/ (torchvision's layout) with "
        "AE_LAB_DATA_DIR=/path/to/data or the override data.root=/path/to/data."
    )


@functools.cache
def check_raw_file(path: str, size: int, mtime_ns: int) -> None:
    """Raises if an IDX file is shorter or longer than its header says or, when it claims the
    official file's image count, differs from the official MD5 sum. Cached by size and mtime, so a
    sweep in one process hashes each file once (about 0.1 s for all four)."""
    with open(path, "rb") as f:
        header = f.read(16)
    ndim = header[3] if len(header) >= 4 and header[:3] == b"\x00\x00\x08" else 0
    if not 1 <= ndim <= 3 or len(header) < 4 + 4 * ndim:
        raise _damaged(path, "it does not start with an IDX header of uint8 data")
    dims = struct.unpack(f">{ndim}I", header[4 : 4 + 4 * ndim])
    expected = 4 + 4 * ndim + math.prod(dims)
    if size != expected:
        raise _damaged(path, f"it has {size:,} bytes where its header promises {expected:,}")
    count, md5 = OFFICIAL.get(Path(path).name, (None, None))
    if dims[0] == count:
        digest = hashlib.md5(Path(path).read_bytes()).hexdigest()
        if digest != md5:
            raise _damaged(path, f"its MD5 sum is {digest}, the official file's is {md5}")


def _damaged(path: str, why: str) -> AeLabError:
    return AeLabError(
        f"MNIST file {path} is damaged: {why}. Delete it to have it downloaded again, or point "
        "AE_LAB_DATA_DIR / data.root at a good copy."
    )


class MNISTDataModule(L.LightningDataModule):
    """Seeded train/val split of the 60k training images; the official 10k as the test set.

    Batches come out as ``{"input", "target", "label"}``: ``target`` is the clean image and
    ``input`` the same image after the configured corruption, applied to the whole batch on the
    device it lives on. Validation and test corruption is re-seeded on every pass, so their curves
    measure the model and not the noise draw.

    ``fast=True`` (default) keeps every image in one uint8 tensor on the training device and
    slices batches from it; ``fast=False`` is the classic torchvision ``ToTensor`` + ``DataLoader``
    path, kept for comparison (``make bench``) and for users who need workers.

    ``binarize_target`` ("threshold" or "sample") makes the clean image itself binary before
    the corruption, so a VAE's Bernoulli likelihood is a true likelihood and its test NLL compares
    with the literature's binarized-MNIST figures.

    There is no cache of the decoded tensor: torchvision reads the raw files in about 0.2 s, a
    cached tensor would save about 0.1-0.3 s of a start-up that imports dominate
    (docs/benchmarks.md), and the data folder may well be read-only.
    """

    def __init__(
        self,
        root: str = "data",
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        val_size: int = 5_000,
        split_seed: int = 42,
        seed: int = 0,
        corruption: Corruption | None = None,
        fast: bool = True,
        on_device: bool = True,
        num_workers: int = 0,
        pin_memory: bool = False,
        download: bool = True,
        binarize_target: str | None = None,
    ) -> None:
        super().__init__()
        self.root = root
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.val_size = val_size
        self.split_seed = split_seed
        self.seed = seed
        self.corruption = corruption or NoCorruption()
        self.fast = fast
        self.on_device = on_device
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.download = download
        self.binarize_target = binarize_target
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._generators: dict[tuple[str, torch.device], torch.Generator] = {}
        self._train_order: torch.Generator | None = None
        self._resumed: dict[str, torch.Tensor] = {}

    def prepare_data(self) -> None:
        for train in (True, False):
            load_mnist(self.root, train=train, download=self.download)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        train = load_mnist(self.root, train=True, download=self.download)
        test = load_mnist(self.root, train=False, download=self.download)
        val_idx, train_idx = self.split_indices(len(train.data))
        self.splits = {
            "train": (train.data[train_idx], train.targets[train_idx]),
            "val": (train.data[val_idx], train.targets[val_idx]),
            "test": (test.data, test.targets),
        }
        device = self._device()
        if self.fast and device is not None:
            self.move_to(device)
        log.info(
            "MNIST from %s: %d train / %d val / %d test images%s",
            Path(self.root).resolve(),
            len(train_idx),
            len(val_idx),
            len(test.data),
            f" resident on {device}" if self.fast and device is not None else "",
        )

    def move_to(self, device: torch.device | str) -> None:
        """Keeps every split resident on ``device``: one copy of 47 MB, then batches are slices."""
        self.splits = {k: (x.to(device), y.to(device)) for k, (x, y) in self.splits.items()}

    def split_indices(self, n: int = 60_000) -> tuple[torch.Tensor, torch.Tensor]:
        """(validation, training) indices into the n training images, fixed by ``split_seed``."""
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.split_seed))
        return perm[: self.val_size].sort().values, perm[self.val_size :].sort().values

    def images(self, split: str) -> torch.Tensor:
        """All images of a split as float in [0, 1], shape (N, 1, 28, 28), on the data's device."""
        x, _ = self.splits[split]
        return x.unsqueeze(1).float().div_(255.0)

    def labels(self, split: str) -> torch.Tensor:
        return self.splits[split][1]

    def _device(self) -> torch.device | None:
        if not self.on_device or self.trainer is None:
            return None
        return self.trainer.strategy.root_device

    def _loader(self, split: str, shuffle: bool) -> Any:
        x, y = self.splits[split]
        batch_size = self.batch_size if split == "train" else self.eval_batch_size
        if self.fast:
            # one shard per process under DDP (Lightning shards only torch DataLoaders itself)
            rank = getattr(self.trainer, "global_rank", 0)
            world = getattr(self.trainer, "world_size", 1)
            return TensorBatchLoader(
                x, y, batch_size, shuffle=shuffle, seed=self.seed, rank=rank, world_size=world
            )
        return classic_loader(
            x, y, batch_size, shuffle, self.seed, self.num_workers, self.pin_memory
        )

    def train_dataloader(self) -> Any:
        loader = self._loader("train", shuffle=True)
        self._train_order = loader.generator
        self._restore("train_order", self._train_order)
        return Numbered(loader)

    def val_dataloader(self) -> Any:
        return Numbered(self._loader("val", shuffle=False))

    def test_dataloader(self) -> Any:
        return Numbered(self._loader("test", shuffle=False))

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The random state that carries over from one epoch to the next, saved in checkpoints so
        that a resumed run draws the same batch order and training corruption as an unbroken one.
        (Evaluation corruption is re-seeded on every pass and needs none.)"""
        state = {}
        if self._train_order is not None:
            state["train_order"] = self._train_order.get_state()
        for (kind, device), gen in self._generators.items():
            if kind == "train":
                state[f"train_corruption/{device.type}"] = gen.get_state()
        return state

    def load_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        # applied when the generators are made, which is after Lightning restores this state
        self._resumed = dict(state_dict)

    def _restore(self, key: str, generator: torch.Generator) -> None:
        if key in self._resumed:
            generator.set_state(self._resumed.pop(key))

    def transfer_batch_to_device(
        self, batch: Any, device: torch.device, dataloader_idx: int
    ) -> Any:
        # Resident batches are already where they belong; Lightning's generic move walks the
        # batch's structure on every step only to find that out (about 10 us per step).
        if batch[0].device == device:
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> dict[str, torch.Tensor]:
        x, y, i = batch
        training = self.trainer is None or self.trainer.training
        gen = self._generator("train" if training else "eval", x.device)
        if not training:  # same corruption on every evaluation pass
            gen.manual_seed(self.seed * 1_000_003 + i)
        if self.binarize_target == "threshold":
            x = (x > 0.5).to(x.dtype)
        elif self.binarize_target == "sample":
            x = torch.bernoulli(x, generator=gen)
        return {"input": self.corruption(x, generator=gen), "target": x, "label": y}

    def _generator(self, kind: str, device: torch.device) -> torch.Generator:
        key = (kind, device)
        if key not in self._generators:
            gen = torch.Generator(device=device).manual_seed(self.seed + 1)
            self._restore(f"{kind}_corruption/{device.type}", gen)
            self._generators[key] = gen
        return self._generators[key]


class Numbered:
    """Adds each batch's position in the pass, so evaluation corruption can be seeded by it."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Any:
        for i, (x, y) in enumerate(self.loader):
            yield x, y, i


class _ToTensorDataset(torch.utils.data.Dataset):
    """Per-sample PIL decode + ``ToTensor``, as the classic MNIST tutorials do."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        from torchvision import transforms

        self.images, self.labels = images.cpu(), labels.cpu()
        self.to_tensor = transforms.ToTensor()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        img = Image.fromarray(self.images[i].numpy(), mode="L")
        return self.to_tensor(img), int(self.labels[i])


def classic_loader(
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    shuffle: bool,
    seed: int,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(
        _ToTensorDataset(images, labels),
        batch_size=batch_size,
        shuffle=shuffle,
        generator=torch.Generator().manual_seed(seed) if shuffle else None,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )
