from pathlib import Path

import pytest
import torch
from torchvision.datasets import MNIST

from ae_lab.data import MNISTDataModule, PixelMask
from ae_lab.errors import AeLabError
from tests.conftest import evaluating


def make_dm(root: Path, **kw) -> MNISTDataModule:
    kw.setdefault("val_size", 100)
    kw.setdefault("batch_size", 32)
    dm = MNISTDataModule(root=str(root), download=False, **kw)
    dm.setup("fit")
    return dm


def test_split_is_seeded_disjoint_and_complete(synthetic_root):
    dm = make_dm(synthetic_root)
    val_idx, train_idx = dm.split_indices(600)
    assert len(val_idx) == 100 and len(train_idx) == 500
    assert set(val_idx.tolist()).isdisjoint(train_idx.tolist())
    assert sorted(val_idx.tolist() + train_idx.tolist()) == list(range(600))
    same, _ = make_dm(synthetic_root).split_indices(600)
    other, _ = make_dm(synthetic_root, split_seed=7).split_indices(600)
    assert torch.equal(val_idx, same) and not torch.equal(val_idx, other)


def test_splits_hold_torchvision_images(synthetic_root):
    dm = make_dm(synthetic_root)
    tv_train = MNIST(str(synthetic_root), train=True)
    tv_test = MNIST(str(synthetic_root), train=False)
    val_idx, _ = dm.split_indices(600)
    assert torch.equal(dm.splits["val"][0], tv_train.data[val_idx])
    assert torch.equal(dm.splits["test"][0], tv_test.data)
    assert torch.equal(dm.labels("test"), tv_test.targets)
    images = dm.images("test")
    assert images.shape == (200, 1, 28, 28) and images.dtype == torch.float32
    assert images.min() >= 0.0 and images.max() <= 1.0


def test_batches_carry_corrupted_input_and_clean_target(synthetic_root):
    dm = make_dm(synthetic_root, corruption=PixelMask(0.5))
    x, y, i = next(iter(dm.train_dataloader()))
    batch = dm.on_after_batch_transfer((x, y, i), 0)
    assert set(batch) == {"input", "target", "label"}
    assert torch.equal(batch["target"], x)
    assert not torch.equal(batch["input"], batch["target"])
    assert torch.all((batch["input"] == 0) | (batch["input"] == x))
    assert len(dm.train_dataloader()) == -(-500 // 32)


def test_eval_corruption_is_identical_on_every_pass(synthetic_root):
    dm = make_dm(synthetic_root, corruption=PixelMask(0.5))
    dm.trainer = evaluating()

    def one_pass():
        return [dm.on_after_batch_transfer(b, 0)["input"] for b in dm.val_dataloader()]

    first, second = one_pass(), one_pass()
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert not torch.equal(first[0], first[1][: len(first[0])])


def test_missing_files_name_the_place_and_the_fix(tmp_path):
    dm = MNISTDataModule(root=str(tmp_path / "nowhere"), download=False)
    with pytest.raises(AeLabError) as err:
        dm.setup("fit")
    message = str(err.value)
    assert str(tmp_path / "nowhere") in message
    assert "AE_LAB_DATA_DIR" in message and "data.root" in message


def test_failed_download_says_so(tmp_path, monkeypatch):
    def offline(self):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(MNIST, "download", offline)
    with pytest.raises(AeLabError, match="the download failed: Error downloading"):
        MNISTDataModule(root=str(tmp_path)).prepare_data()
