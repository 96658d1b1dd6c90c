"""How batches are served: by index slicing one resident tensor (no per-sample Python, no PIL,
no workers), or through the classic torchvision ``ToTensor`` + ``DataLoader`` path.

MNIST's training images are 47 MB as uint8 (as are those of every 28x28 grey dataset of its
size), SVHN's 225 MB, so the whole split fits on any training device. Decoding and collating each
sample through a ``DataLoader`` costs more than a small autoencoder's step; slicing a tensor that
already lives on the device costs almost nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch


class TensorBatchLoader:
    """Yields ``(images, labels)`` batches, images as float in [0, 1] with shape (B, C, H, W)
    (uint8 images given as (N, H, W) are one channel).

    The order matches ``DataLoader(..., shuffle=True, generator=torch.Generator().manual_seed(s))``
    for the same seed, epoch after epoch, so switching ``data.fast`` changes the speed and not the
    run (``tests/test_data.py`` holds this against torch's own ``DataLoader``). The
    permutation is drawn on the CPU so that CPU and GPU runs see identical batches.

    With ``world_size`` processes (DDP) each takes every ``world_size``-th image of that order,
    starting at its ``rank``, padded like torch's ``DistributedSampler`` so that every process
    runs the same number of batches.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if images.dtype != torch.uint8:
            raise TypeError(f"expected uint8 images, got {images.dtype}")
        # a view: every batch comes out shaped (B, C, H, W)
        self.images = images.unsqueeze(1) if images.dim() == 3 else images
        self.labels = labels
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = torch.Generator().manual_seed(seed)
        self.rank = rank
        self.world_size = world_size

    @property
    def device(self) -> torch.device:
        return self.images.device

    def _shard_size(self) -> int:
        return math.ceil(len(self.images) / self.world_size)

    def __len__(self) -> int:
        n = self._shard_size() / self.batch_size
        return math.floor(n) if self.drop_last else math.ceil(n)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = self._shard_size()
        order = self._epoch_order(len(self.images)) if self.shuffle else None
        if self.world_size > 1:
            if order is None:
                order = torch.arange(len(self.images))
            order = order.repeat(2)[: n * self.world_size][self.rank :: self.world_size]
        if order is not None:
            order = order.to(self.device, non_blocking=True)
        for i in range(len(self)):
            lo, hi = i * self.batch_size, min((i + 1) * self.batch_size, n)
            if order is None:
                x, y = self.images[lo:hi], self.labels[lo:hi]
            else:  # index_select gathers rows about 3x faster than advanced indexing (images[idx])
                idx = order[lo:hi]
                x, y = self.images.index_select(0, idx), self.labels.index_select(0, idx)
            yield x / 255.0, y  # one op: uint8 -> float32 in [0, 1]

    def _epoch_order(self, n: int) -> torch.Tensor:
        """The permutation a seeded ``DataLoader`` would use for this epoch.

        Per epoch the ``DataLoader`` draws one int64 from its generator (the workers' base seed),
        then ``RandomSampler`` draws ``randperm(n)`` and, once exhausted, one more (empty-sliced)
        ``randperm(n)``. Drawing the same three keeps the generator in step across epochs.
        """
        torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        order = torch.randperm(n, generator=self.generator)
        torch.randperm(n, generator=self.generator)
        return order


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
    """Per-sample PIL decode + ``ToTensor``, as the classic torchvision tutorials do."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        from torchvision import transforms

        self.images, self.labels = images.cpu(), labels.cpu()
        self.to_tensor = transforms.ToTensor()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        image = self.images[i]  # (C, H, W): grey as (H, W), colour as (H, W, C), as PIL has them
        pixels = image[0] if len(image) == 1 else image.permute(1, 2, 0).contiguous()
        img = Image.fromarray(pixels.numpy(), mode="L" if len(image) == 1 else "RGB")
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
