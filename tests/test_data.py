"""The data layer on tiny synthetic files in torchvision's layout: the split, the fast path as a
faster way to the *same* run as torchvision's dataset through a seeded ``DataLoader`` (images,
labels, order, corruption), every dataset through the one datamodule, and the raw files' checks.
The last tests run the entrypoint on Fashion-MNIST and KMNIST, as a user would."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Subset
from torchvision import transforms

from ae_lab.core.errors import AeLabError
from ae_lab.data import (
    Binarize,
    GaussianNoise,
    ImageData,
    ImageDataModule,
    MNISTDataModule,
    NoCorruption,
    PixelMask,
)
from ae_lab.data.definition import dataset_names, definition
from ae_lab.data.files import check_raw_file, load_raw, torchvision_class
from ae_lab.evaluation import DownstreamClassification
from ae_lab.evaluation import classifier as downstream_mod
from ae_lab.models import CNNClassifier
from tests.conftest import (
    DEVICES,
    RAW_NAMES,
    TINY,
    evaluating,
    run_in_process,
    write_idx,
    write_mnist,
)

SEED = 7
# the datasets in MNIST's file format (ae_lab/data/datasets/), whose files write_mnist writes
IDX_DATASETS = [name for name in dataset_names() if definition(name).format == "idx"]
# each one's synthetic files, with images of their own (another seed for each)
FOLDERS = {name: (definition(name).folder, 1 + 10 * i) for i, name in enumerate(IDX_DATASETS)}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data root holding all three datasets side by side, as torchvision lays them out."""
    root = tmp_path_factory.mktemp("datasets")
    for folder, seed in FOLDERS.values():
        write_mnist(root, folder=folder, seed=seed)
    return root


def datamodule(root, dataset="mnist", corruption=None, fast=True, batch_size=32, **kw):
    kw = {"val_size": 100, "eval_batch_size": 48, "seed": SEED, **kw}
    dm = ImageDataModule(
        dataset,
        root=str(root),
        batch_size=batch_size,
        corruption=corruption,
        fast=fast,
        download=False,
        **kw,
    )
    dm.setup("fit")
    return dm


def batches(loader) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x.cpu(), y.cpu()) for x, y, *_ in loader]


def reference_loader(root, train: bool, indices, batch_size: int, shuffle: bool) -> DataLoader:
    """The classic pipeline: torchvision's dataset, ToTensor, a seeded shuffling DataLoader."""
    dataset = torchvision_class(definition("mnist"))(
        str(root), train=train, transform=transforms.ToTensor(), download=False
    )
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


# --- the split and the batches ---


def test_split_is_seeded_disjoint_and_complete(root):
    dm = datamodule(root)
    val_idx, train_idx = dm.split_indices(600)
    assert len(val_idx) == 100 and len(train_idx) == 500
    assert set(val_idx.tolist()).isdisjoint(train_idx.tolist())
    assert sorted(val_idx.tolist() + train_idx.tolist()) == list(range(600))
    same, _ = datamodule(root).split_indices(600)
    other, _ = datamodule(root, split_seed=43).split_indices(600)
    assert torch.equal(val_idx, same) and not torch.equal(val_idx, other)
    # without a count, the dataset's own number of training images
    assert len(torch.cat(dm.split_indices())) == definition("mnist").train_images
    with pytest.raises(AeLabError, match="data.val_size=600 leaves no training images: .* 600;"):
        datamodule(root, val_size=600)


@pytest.mark.parametrize("dataset", IDX_DATASETS)
def test_every_dataset_is_read_from_its_own_folder_by_its_torchvision_class(root, dataset):
    dm = datamodule(root, dataset)
    assert isinstance(dm, ImageData)  # the contract the models and callbacks rely on
    tv_train = torchvision_class(dm.definition)(str(root), train=True)
    tv_test = torchvision_class(dm.definition)(str(root), train=False)
    assert Path(tv_train.raw_folder) == root / FOLDERS[dataset][0] / "raw"
    val_idx, _ = dm.split_indices(600)
    assert torch.equal(dm.splits["val"][0][:, 0], tv_train.data[val_idx])  # (N, 1, H, W)
    assert torch.equal(dm.splits["test"][0][:, 0], tv_test.data)
    assert torch.equal(dm.labels("test"), tv_test.targets)
    images = dm.images("test")
    assert images.shape == (200, *dm.image_shape) and images.dtype == torch.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert len(dm.class_names) == 10


def test_class_names_are_the_datasets_own(root):
    assert datamodule(root, "mnist").class_names == tuple("0123456789")
    fashion = datamodule(root, "fashion_mnist").class_names
    assert fashion[0] == "T-shirt/top" and fashion[9] == "Ankle boot"
    assert datamodule(root, "kmnist").class_names[:3] == ("o", "ki", "su")
    assert MNISTDataModule(root=str(root)).dataset == "mnist"  # the name older code uses


@pytest.mark.parametrize("fast", [True, False])
def test_batches_match_torchvision_dataloader(root, fast):
    dm = datamodule(root, fast=fast)
    val_idx, train_idx = dm.split_indices(600)

    # the training loader is built once per fit and reshuffles every epoch, like a DataLoader
    ours, ref = dm.train_dataloader(), reference_loader(root, True, train_idx, 32, True)
    epochs = [batches(ours) for _ in range(3)]
    for epoch in epochs:
        assert_same_batches(epoch, batches(ref))
    assert not torch.equal(epochs[0][0][1], epochs[1][0][1])  # a new order each epoch

    val_ref = reference_loader(root, True, val_idx, 48, False)
    assert_same_batches(batches(dm.val_dataloader()), batches(val_ref))
    test_ref = reference_loader(root, False, None, 48, False)
    assert_same_batches(batches(dm.test_dataloader()), batches(test_ref))


def test_batches_carry_corrupted_input_and_clean_target(root):
    dm = datamodule(root, corruption=PixelMask(0.5))
    x, y, i = next(iter(dm.train_dataloader()))
    batch = dm.on_after_batch_transfer((x, y, i), 0)
    assert set(batch) == {"input", "target", "label"}
    assert torch.equal(batch["target"], x)
    assert not torch.equal(batch["input"], batch["target"])
    assert torch.all((batch["input"] == 0) | (batch["input"] == x))
    assert len(dm.train_dataloader()) == -(-500 // 32)


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
def test_batch_corruption_matches_per_image_definition(root, corruption, device):
    dm = datamodule(root, corruption=corruption)
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
def test_eval_corruption_is_the_same_every_pass_and_training_noise_is_not(root, corruption):
    dm = datamodule(root, corruption=corruption)

    def inputs(loader):
        return [dm.on_after_batch_transfer(b, 0)["input"] for b in loader]

    dm.trainer = None  # outside a trainer the datamodule treats batches as training batches
    train_a, train_b = inputs(dm.val_dataloader()), inputs(dm.val_dataloader())
    assert not torch.equal(train_a[0], train_b[0])

    dm.trainer = evaluating()
    val_a, val_b = inputs(dm.val_dataloader()), inputs(dm.val_dataloader())
    for a, b in zip(val_a, val_b, strict=True):
        assert torch.equal(a, b)
    # each batch of a pass has a draw of its own, not the first batch's again
    assert not torch.equal(val_a[0], val_a[1][: len(val_a[0])])


@pytest.mark.parametrize("device", DEVICES)
def test_resident_batches_on_the_device_are_the_classic_paths(root, device):
    """The fast path's batches, resident on ``device``, equal the classic path's, built on the
    CPU by a DataLoader: on a CPU two different paths, on a GPU two devices as well."""
    classic = datamodule(root, corruption=Binarize(), fast=False)
    resident = datamodule(root, corruption=Binarize())
    resident.move_to(device)
    for make in ("train_dataloader", "val_dataloader", "test_dataloader"):
        for ref, got in zip(getattr(classic, make)(), getattr(resident, make)(), strict=True):
            a = classic.on_after_batch_transfer(ref, 0)
            b = resident.on_after_batch_transfer(got, 0)
            assert b["target"].device.type == device
            for key in ("input", "target", "label"):
                assert torch.equal(a[key], b[key].cpu())


# --- finding, downloading and checking the files ---


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist"])
def test_missing_files_name_the_dataset_the_place_and_the_fix(tmp_path, dataset):
    dm = ImageDataModule(dataset, root=str(tmp_path / "nowhere"), download=False)
    with pytest.raises(AeLabError) as err:
        dm.setup("fit")
    message = str(err.value)
    data = definition(dataset)
    assert message.startswith(f"{data.name} files not found in {tmp_path / 'nowhere'}/")
    assert f"{data.folder}/raw/" in message
    assert "AE_LAB_DATA_DIR" in message and "data.root" in message


@pytest.mark.parametrize("dataset", ["mnist", "kmnist"])
def test_a_failed_download_says_so(tmp_path, monkeypatch, dataset):
    """The download goes through the dataset's own torchvision class (its mirrors and sums)."""

    def offline(self):
        raise RuntimeError(f"Error downloading {type(self).__name__} train-images-idx3-ubyte.gz")

    cls = torchvision_class(definition(dataset))
    monkeypatch.setattr(cls, "download", offline)
    expected = f"the download failed: Error downloading {cls.__name__} "
    with pytest.raises(AeLabError, match=expected):
        ImageDataModule(dataset, root=str(tmp_path)).prepare_data()


def check(dataset: str, path: Path) -> tuple[int, ...]:
    return check_raw_file(dataset, str(path), path.stat().st_size, path.stat().st_mtime_ns)


def test_a_truncated_idx_file_is_named(tmp_path):
    raw = write_mnist(tmp_path, n_train=20, n_test=10, folder="FashionMNIST") / "FashionMNIST"
    path = raw / "raw" / "train-images-idx3-ubyte"
    assert check("fashion_mnist", path) == (20, 28, 28)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(AeLabError, match="Fashion-MNIST file .*train-images-idx3-ubyte is damaged"):
        check("fashion_mnist", path)


@pytest.mark.parametrize(
    "name, array, why",
    [
        ("train-images-idx3-ubyte", np.zeros((20, 32, 32)), "items of 32x32 where KMNIST has"),
        ("train-images-idx3-ubyte", np.zeros((20, 784)), "items of 784 where KMNIST has 28x28"),
        ("train-labels-idx1-ubyte", np.zeros((20, 2)), "items of 2 where KMNIST has single"),
        ("train-labels-idx1-ubyte", np.zeros(19), "20 images and train-labels-idx1-ubyte 19"),
    ],
)
def test_files_that_do_not_fit_the_dataset_or_each_other_are_named(tmp_path, name, array, why):
    raw = write_mnist(tmp_path, n_train=20, n_test=10, folder="KMNIST") / "KMNIST" / "raw"
    write_idx(raw / name, array)
    with pytest.raises(AeLabError, match=f"KMNIST file .* is damaged: it holds {why}"):
        load_raw("kmnist", tmp_path, train=True, download=False)


def test_each_dataset_is_checked_against_its_own_official_sums(tmp_path):
    """Fashion-MNIST's files have MNIST's names and counts: MNIST's sums must not judge them."""
    for folder in ("MNIST", "FashionMNIST"):
        raw = write_mnist(tmp_path, n_train=20, n_test=10, folder=folder) / folder / "raw"
        write_idx(raw / RAW_NAMES[True][1], np.arange(60_000) % 10)  # the official count
    check("fashion_mnist", tmp_path / "FashionMNIST" / "raw" / RAW_NAMES[True][1])
    with pytest.raises(AeLabError, match="its MD5 sum is .*, the official file's is a25bea73"):
        check("mnist", tmp_path / "MNIST" / "raw" / RAW_NAMES[True][1])


def test_an_archive_beside_a_file_must_be_the_official_one_and_unpack_to_it(tmp_path, monkeypatch):
    """Where a file's own sum is unknown, torchvision's sum for its archive is checked."""
    raw = write_mnist(tmp_path, n_train=20, n_test=10, folder="KMNIST") / "KMNIST" / "raw"
    path = raw / RAW_NAMES[False][0]
    archive = raw / f"{path.name}.gz"
    archive.write_bytes(gzip.compress(path.read_bytes()))
    official = dict(torchvision_class(definition("kmnist")).resources)[archive.name]
    with pytest.raises(
        AeLabError, match=f"{archive} is damaged: .*official archive's is {official}"
    ):
        check("kmnist", path)
    # with our archive as the official one, the file must be what it unpacks to
    resources = [(archive.name, hashlib.md5(archive.read_bytes()).hexdigest())]
    monkeypatch.setattr(torchvision_class(definition("kmnist")), "resources", resources)
    assert check("kmnist", path) == (10, 28, 28)
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(AeLabError, match=f"{path} is damaged: it is not what {archive.name}"):
        check("kmnist", path)


# --- what the callbacks take from the run's dataset ---


def test_the_downstream_classifier_is_trained_and_cached_per_dataset(root, tmp_path, monkeypatch):
    trained = []

    def train(*args, **kwargs):
        trained.append(args[0].dataset)
        return CNNClassifier()

    monkeypatch.setattr(downstream_mod, "train_classifier", train)
    callback = DownstreamClassification(cache_dir=str(tmp_path), epochs=1)
    fashion, kmnist = datamodule(root, "fashion_mnist"), datamodule(root, "kmnist")
    assert callback.cache_path(fashion) != callback.cache_path(kmnist)
    for dm in (fashion, kmnist, fashion):
        callback.load_classifier(dm, torch.device("cpu"))
    assert trained == ["fashion_mnist", "kmnist"]  # the third found the first's file


# --- through the entrypoint, in this process ---


@pytest.fixture(scope="module")
def full_runs(root, tmp_path_factory) -> dict[str, Path]:
    """Fashion-MNIST (a dense AE) and KMNIST (a dense VAE) with every callback, their
    classifiers cached in one folder."""
    out = tmp_path_factory.mktemp("full_runs")
    runs = {}
    for dataset, model in (("fashion_mnist", "ae"), ("kmnist", "vae")):
        runs[dataset] = out / dataset
        run_in_process(
            f"data={dataset}",
            f"model={model}",
            "callbacks=full",
            "callbacks.probe.n_train=2000",
            "callbacks.samples.n_samples=300",
            "callbacks.nll.n_samples=10",
            f"callbacks.downstream.cache_dir={out / 'cache'}",
            "callbacks.downstream.epochs=1",
            "callbacks.latent_map.max_iter=250",
            "data.val_size=100",
            "threads=1",
            *TINY,
            run_dir=runs[dataset],
            data_root=root,
        )
    return runs


@pytest.mark.parametrize("dataset", ["fashion_mnist", "kmnist"])
def test_another_dataset_runs_end_to_end_with_every_callback(root, full_runs, dataset):
    run = full_runs[dataset]
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("test/mse", "pca/test_mse", "test/mse_digit/0", "pca/test_mse_digit/9"):
        assert key in metrics
    assert 0 <= metrics["downstream/acc_original"] <= 1 and "downstream/acc_pca" in metrics
    log = (run / "train.log").read_text()
    assert f"{definition(dataset).name} from " in log
    names = datamodule(root, dataset).class_names
    table = log.split("test MSE per class:\n", 1)[1].splitlines()[1:11]
    assert [row.split("  ")[0].strip() for row in table] == list(names)
    assert (run / "figures" / "latent_map.png").exists()
    for key in ("probe/acc", "probe/acc_100", "pca/probe_acc", "pca/probe_acc_100"):
        assert 0.1 < metrics[key] <= 1, key  # better than chance on the 10 classes
    if dataset == "kmnist":  # the VAE: its prior samples through the same classifier
        assert metrics["samples/fd"] > 0 and 0 <= metrics["samples/confident"] <= 1
        assert 0 <= metrics["samples/class_entropy"] <= math.log(10) + 1e-6
    else:
        assert "samples/fd" not in metrics
    # one downstream classifier per dataset, each trained on its dataset's training images
    assert len(list((run.parent / "cache").glob("classifier-*.ckpt"))) == 2


@pytest.mark.parametrize("dataset", ["fashion_mnist", "kmnist"])
def test_a_wrong_archive_ends_the_run_in_one_line(tmp_path, dataset):
    data = definition(dataset)
    raw = write_mnist(tmp_path / "data", folder=data.folder) / data.folder / "raw"
    path = raw / RAW_NAMES[True][0]
    (raw / f"{path.name}.gz").write_bytes(gzip.compress(path.read_bytes()))
    ended = run_in_process(
        f"data={dataset}", *TINY, run_dir=tmp_path / "run", data_root=tmp_path / "data", check=False
    )
    assert ended.code != 0
    line = ended.message
    assert line.startswith(f"{data.name} file {path}.gz is damaged: its MD5 sum is ")
    assert "the official archive's is" in line and "Delete it" in line
