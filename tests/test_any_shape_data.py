"""Datasets of any shape through the one datamodule: SVHN (3x32x32 colour, its .mat files) on
small files of its format written here, the fast path and the classic one, every transform and
binarized target on C x H x W, the checks of the files and of data.image_shape, and a tiny run
of the entrypoint in this process."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from hydra.utils import instantiate

from ae_lab.core.errors import AeLabError
from ae_lab.data import Binarize, GaussianNoise, ImageData, ImageDataModule, NoCorruption, PixelMask
from ae_lab.data.definition import dataset_names, definition
from ae_lab.data.fetch import torchvision_class
from ae_lab.data.formats import Source, svhn_mat
from ae_lab.data.formats.svhn_mat import file_name
from ae_lab.run.train import CONFIG_DIR
from tests.conftest import DEVICES, FAST, compose_cfg, evaluating, options, run_in_process

SHAPE = (3, 32, 32)


def svhn_arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Colour images as SVHN's files hold them, (H, W, C, N), and labels 1..10 (10: the digit
    0); label k lights a bar in a k-dependent colour and place, so the classes differ."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(1, 11, n)
    x = rng.integers(0, 60, (32, 32, 3, n))
    for i, k in enumerate(labels):
        x[2 * k : 2 * k + 4, 4:28, k % 3, i] = 255
    return x.astype(np.uint8), labels.reshape(n, 1).astype(np.uint8)


def write_svhn(root: Path, n_train: int = 300, n_test: int = 100, seed: int = 5) -> Path:
    """Training and test files of SVHN's format in ``root/SVHN/``, as torchvision downloads them."""
    folder = root / definition("svhn").folder
    folder.mkdir(parents=True, exist_ok=True)
    for train, n in ((True, n_train), (False, n_test)):
        x, y = svhn_arrays(n, seed + train)
        scipy.io.savemat(folder / file_name(train), {"X": x, "y": y})
    return root


@pytest.fixture(scope="module")
def svhn_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_svhn(tmp_path_factory.mktemp("svhn"))


def datamodule(root: Path, **kw) -> ImageDataModule:
    kw = {"val_size": 50, "batch_size": 32, "eval_batch_size": 40, "seed": 3, **kw}
    dm = ImageDataModule("svhn", root=str(root), download=False, **kw)
    dm.setup("fit")
    return dm


# --- the files, read and checked


def test_svhn_is_read_as_n_c_h_w_with_the_digit_0_for_label_10(svhn_root):
    dm = datamodule(svhn_root)
    assert isinstance(dm, ImageData)
    assert dm.image_shape == SHAPE and dm.class_names == tuple("0123456789")
    x, y = svhn_arrays(100, 5)  # the test file's arrays
    test = dm.images("test")
    assert test.shape == (100, *SHAPE) and test.dtype == torch.float32
    expected = torch.from_numpy(x.transpose(3, 2, 0, 1).astype(np.float32) / 255)
    assert torch.equal(test, expected)
    labels = y.reshape(-1).astype(np.int64) % 10
    assert torch.equal(dm.labels("test"), torch.from_numpy(labels))
    assert len(dm.images("train")) == 250 and len(dm.images("val")) == 50
    assert set(dm.labels("train").tolist()) <= set(range(10))


def test_the_shape_stated_in_the_config_is_the_definitions_and_is_checked():
    assert list(compose_cfg("data=svhn").data.image_shape) == list(SHAPE)
    assert definition("svhn").image_shape == SHAPE
    with pytest.raises(AeLabError, match=r"data.image_shape=\[1, 28, 28\] but SVHN images"):
        ImageDataModule("svhn", image_shape=(1, 28, 28))
    from ae_lab.config.data_checks import data_source_given

    line = data_source_given(compose_cfg("data=svhn", "data.image_shape=[1,28,28]"))
    assert line == (
        "data.image_shape must be [3, 32, 32] (SVHN's images; leave it to the dataset), "
        "got [1, 28, 28]"
    )


@pytest.mark.parametrize(
    "content, why",
    [
        (b"not a mat file at all", "it cannot be read as a .mat file"),
        ({"X": np.zeros((28, 28, 1, 4), np.uint8), "y": np.ones((4, 1))}, "its X is 28x28x1x4"),
        (
            {"X": np.zeros((32, 32, 3, 4), np.uint8), "y": np.ones((3, 1))},
            "it holds 4 images and 3",
        ),
        ({"X": np.zeros((32, 32, 3, 4), np.uint8), "y": np.zeros((4, 1))}, "its labels run 0..0"),
        ({"images": np.zeros(3)}, "it holds no X (images) and y (labels)"),
    ],
)
def test_a_damaged_or_foreign_file_is_named(tmp_path, content, why):
    write_svhn(tmp_path, n_train=20, n_test=10)
    path = tmp_path / "SVHN" / file_name(True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        scipy.io.savemat(path, content)
    with pytest.raises(AeLabError) as err:
        ImageDataModule("svhn", root=str(tmp_path), val_size=2, download=False).setup()
    line = str(err.value)
    assert line.startswith(f"SVHN file {path} is damaged: {why}") and "\n" not in line


def test_a_file_of_the_official_count_must_have_the_official_sum(tmp_path):
    write_svhn(tmp_path, n_train=20, n_test=10)
    official = dataclasses.replace(definition("svhn"), test_images=10)
    with pytest.raises(AeLabError, match="its MD5 sum is .*, the official file's is eb5a983b"):
        svhn_mat.load(official, Source(tmp_path, download=False), train=False)
    # a subset (any other count) is checked by its arrays alone
    x, _ = svhn_mat.load(definition("svhn"), Source(tmp_path, download=False), train=False)
    assert x.shape == (10, *SHAPE) and x.dtype == torch.uint8


def test_missing_files_name_the_folder_and_a_failed_download_leaves_nothing(tmp_path, monkeypatch):
    dm = ImageDataModule("svhn", root=str(tmp_path / "nowhere"), download=False)
    with pytest.raises(AeLabError) as err:
        dm.setup()
    assert str(err.value).startswith(f"SVHN files not found in {tmp_path / 'nowhere' / 'SVHN'} ")
    assert "data.download=false" in str(err.value) and "data.root" in str(err.value)

    def offline(self) -> None:  # torchvision's SVHN download, as it fails offline
        Path(self.root, "train_32x32.mat").write_bytes(b"partial")
        raise RuntimeError("Error downloading train_32x32.mat:\n<urlopen error>")

    monkeypatch.setattr(torchvision_class(definition("svhn")), "download", offline)
    with pytest.raises(AeLabError, match="SVHN files not found .* the download failed: Error"):
        ImageDataModule("svhn", root=str(tmp_path / "data")).prepare_data()
    assert not (tmp_path / "data").exists()  # no partial file, folder or lock left


# --- batches: the fast path, the classic path, every corruption on C x H x W


@pytest.mark.parametrize("device", DEVICES)
def test_the_fast_path_serves_the_classic_paths_batches(svhn_root, device):
    classic = datamodule(svhn_root, fast=False, corruption=Binarize())
    resident = datamodule(svhn_root, corruption=Binarize())
    resident.move_to(device)
    for make in ("train_dataloader", "val_dataloader", "test_dataloader"):
        got = list(getattr(resident, make)())
        ref = list(getattr(classic, make)())
        assert len(got) == len(ref)
        for a, b in zip(ref, got, strict=True):
            a, b = classic.on_after_batch_transfer(a, 0), resident.on_after_batch_transfer(b, 0)
            assert b["target"].device.type == device and b["target"].shape[1:] == SHAPE
            for key in ("input", "target", "label"):
                assert torch.equal(a[key], b[key].cpu())


@pytest.mark.parametrize("name", options("transform"))
def test_every_transform_corrupts_colour_batches_per_pixel(svhn_root, name):
    corruption = instantiate(compose_cfg(f"transform={name}").transform)
    dm = datamodule(svhn_root, corruption=corruption)
    out = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    clean, seen = out["target"], out["input"]
    assert clean.shape == seen.shape == (32, *SHAPE)
    assert seen.min() >= 0 and seen.max() <= 1
    if isinstance(corruption, NoCorruption):
        assert torch.equal(seen, clean)
    elif isinstance(corruption, Binarize):
        assert torch.equal(seen, (clean > corruption.threshold).float())
    else:  # one draw per value, every channel its own, from the training seed (3) + 1
        gen = torch.Generator().manual_seed(4)
        if isinstance(corruption, PixelMask):
            keep = torch.rand(clean.shape, generator=gen) >= corruption.p
            assert torch.equal(seen, clean * keep)
            assert not torch.equal(keep[:, 0], keep[:, 1])
        else:
            assert isinstance(corruption, GaussianNoise)
            noise = torch.randn(clean.shape, generator=gen)
            torch.testing.assert_close(seen, (clean + corruption.std * noise).clamp(0, 1))


@pytest.mark.parametrize("how", ["threshold", "sample"])
def test_a_binarized_target_keeps_the_colour_image_as_clean(svhn_root, how):
    dm = datamodule(svhn_root, binarize_target=how, corruption=PixelMask(0.3))
    dm.trainer = evaluating()
    out = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
    assert out["target"].shape == out["clean"].shape == (40, *SHAPE)
    assert set(out["target"].unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(out["clean"], dm.images("val")[:40])
    if how == "threshold":
        assert torch.equal(out["target"], (out["clean"] > 0.5).float())


def test_svhn_is_one_of_the_datasets_and_its_config():
    assert "svhn" in dataset_names()
    assert (Path(CONFIG_DIR) / "data" / "svhn.yaml").is_file()
    cfg = compose_cfg("data=svhn", "data.root=/nowhere")
    dm = instantiate(cfg.data)
    assert dm.dataset == "svhn" and dm.image_shape == SHAPE


# --- through the entrypoint, in this process


def test_a_tiny_run_on_svhn(svhn_root, tmp_path):
    """model=ae on 3x32x32 images: the models are built for the data's image_shape."""
    run = run_in_process(
        "data=svhn",
        "model=ae",
        "latent=4",
        "data.val_size=50",
        "data.batch_size=32",
        *FAST,
        run_dir=tmp_path / "run",
        data_root=svhn_root,
    )
    metrics = json.loads((run.run_dir / "metrics.json").read_text())
    assert 0 <= metrics["test/mse"] < 1
    assert "SVHN from " in run.out and "of 3x32x32" in run.out
