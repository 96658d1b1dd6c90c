"""The fast data path must be a faster way to the *same* run: same images, labels, order and
corruption as torchvision's dataset served through a seeded ``DataLoader``."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Subset
from torchvision import transforms
from torchvision.datasets import MNIST

from ae_lab.data import Binarize, GaussianNoise, MNISTDataModule, NoCorruption, PixelMask
from tests.conftest import DEVICES, evaluating

SEED = 7


def datamodule(root, corruption=None, fast=True, batch_size=32) -> MNISTDataModule:
    dm = MNISTDataModule(
        root=str(root),
        batch_size=batch_size,
        eval_batch_size=48,
        val_size=100,
        seed=SEED,
        corruption=corruption,
        fast=fast,
        download=False,
    )
    dm.setup("fit")
    return dm


def batches(loader) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x.cpu(), y.cpu()) for x, y, *_ in loader]


def reference_loader(root, train: bool, indices, batch_size: int, shuffle: bool) -> DataLoader:
    """The classic pipeline: torchvision's dataset, ToTensor, a seeded shuffling DataLoader."""
    dataset = MNIST(str(root), train=train, transform=transforms.ToTensor(), download=False)
    if indices is not None:
        dataset = Subset(dataset, indices.tolist())
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=torch.Generator().manual_seed(SEED) if shuffle else None,
    )


def assert_same_batches(got, expected) -> None:
    assert len(got) == len(expected)
    for (x, y), (ex, ey) in zip(got, expected, strict=True):
        assert x.dtype == ex.dtype == torch.float32
        assert x.shape == ex.shape
        assert torch.equal(x, ex)
        assert torch.equal(y, ey)


@pytest.mark.parametrize("fast", [True, False])
def test_batches_match_torchvision_dataloader(synthetic_root, fast):
    dm = datamodule(synthetic_root, fast=fast)
    val_idx, train_idx = dm.split_indices(600)

    # the training loader is built once per fit and reshuffles every epoch, like a DataLoader
    ours, ref = dm.train_dataloader(), reference_loader(synthetic_root, True, train_idx, 32, True)
    epochs = [batches(ours) for _ in range(3)]
    for epoch in epochs:
        assert_same_batches(epoch, batches(ref))
    assert not torch.equal(epochs[0][0][1], epochs[1][0][1])  # a new order each epoch

    val_ref = reference_loader(synthetic_root, True, val_idx, 48, False)
    assert_same_batches(batches(dm.val_dataloader()), batches(val_ref))
    test_ref = reference_loader(synthetic_root, False, None, 48, False)
    assert_same_batches(batches(dm.test_dataloader()), batches(test_ref))


def test_split_is_disjoint_and_fixed_by_split_seed(synthetic_root):
    dm = datamodule(synthetic_root)
    val_idx, train_idx = dm.split_indices(600)
    assert len(val_idx) == 100 and len(train_idx) == 500
    assert not set(val_idx.tolist()) & set(train_idx.tolist())
    other = MNISTDataModule(root=str(synthetic_root), val_size=100, split_seed=43)
    assert not torch.equal(other.split_indices(600)[0], val_idx)


def per_image(corruption, x: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
    """Each corruption's definition for one image (C, H, W), given that image's random draw."""
    if isinstance(corruption, NoCorruption):
        return x
    if isinstance(corruption, Binarize):
        return torch.where(x > corruption.threshold, 1.0, 0.0)
    if isinstance(corruption, GaussianNoise):
        return torch.clamp(x + corruption.std * noise, 0.0, 1.0)
    if isinstance(corruption, PixelMask):
        return torch.where(noise >= corruption.p, x, 0.0)
    raise AssertionError(f"no per-image definition for {corruption}")


def draws(corruption, shape, device) -> torch.Tensor | None:
    """The random numbers the corruption should consume, from the datamodule's training seed."""
    gen = torch.Generator(device=device).manual_seed(SEED + 1)
    if isinstance(corruption, GaussianNoise):
        return torch.randn(shape, generator=gen, device=device)
    if isinstance(corruption, PixelMask):
        return torch.rand(shape, generator=gen, device=device)
    return None


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "corruption", [NoCorruption(), Binarize(0.3), GaussianNoise(0.4), PixelMask(0.6)], ids=repr
)
def test_batch_corruption_matches_per_image_definition(synthetic_root, corruption, device):
    dm = datamodule(synthetic_root, corruption=corruption)
    dm.move_to(device)
    out = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)

    clean = out["target"]
    assert clean.device.type == device and out["input"].shape == clean.shape == (32, 1, 28, 28)
    noise = draws(corruption, clean.shape, device)
    for i in range(len(clean)):
        expected = per_image(corruption, clean[i], None if noise is None else noise[i])
        torch.testing.assert_close(out["input"][i], expected, rtol=0, atol=1e-6)
    if not isinstance(corruption, NoCorruption):
        assert not torch.equal(out["input"], clean)
    assert out["input"].min() >= 0 and out["input"].max() <= 1


@pytest.mark.parametrize("corruption", [GaussianNoise(0.3), PixelMask(0.5)], ids=repr)
def test_eval_corruption_is_the_same_every_pass_and_training_noise_is_not(
    synthetic_root, corruption
):
    dm = datamodule(synthetic_root, corruption=corruption)

    def inputs(loader):
        return [dm.on_after_batch_transfer(b, 0)["input"] for b in loader]

    dm.trainer = None  # outside a trainer the datamodule treats batches as training batches
    train_a, train_b = inputs(dm.val_dataloader()), inputs(dm.val_dataloader())
    assert not torch.equal(train_a[0], train_b[0])

    dm.trainer = evaluating()
    val_a, val_b = inputs(dm.val_dataloader()), inputs(dm.val_dataloader())
    for a, b in zip(val_a, val_b, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("device", DEVICES)
def test_batches_are_the_same_on_every_device(synthetic_root, device):
    """Resident batches, corrupted where they reside, against the classic CPU pipeline (a
    DataLoader over PIL images and ToTensor): the same batches on every device, the CPU too."""
    reference = datamodule(synthetic_root, corruption=Binarize(), fast=False)
    on_device = datamodule(synthetic_root, corruption=Binarize())
    on_device.move_to(device)
    for make in ("train_dataloader", "val_dataloader", "test_dataloader"):
        ref_loader, dev_loader = getattr(reference, make)(), getattr(on_device, make)()
        for ref, got in zip(ref_loader, dev_loader, strict=True):
            a = reference.on_after_batch_transfer(ref, 0)
            b = on_device.on_after_batch_transfer(got, 0)
            assert b["target"].device.type == device
            for key in ("input", "target", "label"):
                assert torch.equal(a[key], b[key].cpu())
