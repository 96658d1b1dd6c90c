"""data=folder: a folder of the user's own images (PNGs of mixed sizes, grey and colour, with
and without class sub-folders, a damaged file and a file that is no image) through the
datamodule, the checks of its keys before any data is read, and one tiny run in this process."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ae_lab.config.validation import problems
from ae_lab.core.errors import AeLabError
from ae_lab.data import ImageData, ImageDataModule
from tests.conftest import FAST, compose_cfg, run_in_process

# (class folder, how many, colour of the images' square, PIL mode, size (width, height))
CLASSES = {
    "cats": (10, (255, 0, 0), "RGB", (40, 30)),
    "dogs": (8, (0, 0, 255), "RGB", (64, 64)),
    "owls": (7, (128, 128, 128), "L", (20, 36)),
}
N_IMAGES = sum(spec[0] for spec in CLASSES.values())


def write_image(path: Path, colour: tuple[int, int, int], mode: str, size: tuple[int, int]) -> None:
    """A square of ``colour`` over a noisy background, in ``mode`` (grey or colour)."""
    rng = np.random.default_rng(len(path.name) + size[0])
    pixels = rng.integers(0, 30, (size[1], size[0], 3)).astype(np.uint8)
    pixels[size[1] // 4 : 3 * size[1] // 4, size[0] // 4 : 3 * size[0] // 4] = colour
    Image.fromarray(pixels).convert(mode).save(path)


def write_folder(root: Path, classes: bool = True) -> Path:
    """Images in class sub-folders (or all in ``root``), plus a damaged PNG, a text file and a
    hidden file, none of them images."""
    root.mkdir(parents=True, exist_ok=True)
    for name, (n, colour, mode, size) in CLASSES.items():
        folder = root / name if classes else root
        folder.mkdir(exist_ok=True)
        for i in range(n):
            wide = (size[0] + 3 * i, size[1] + i)  # mixed sizes within a class too
            write_image(folder / f"{name}_{i:02d}.png", colour, mode, wide)
    first = root / "cats" if classes else root
    good = (first / "cats_00.png").read_bytes()
    (first / "broken.png").write_bytes(good[: len(good) // 3])  # cut short
    (first / "notes.txt").write_text("not an image\n")
    (first / ".DS_Store").write_bytes(b"\x00\x01")
    return root


@pytest.fixture(scope="module")
def classed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_folder(tmp_path_factory.mktemp("folders") / "pets")


@pytest.fixture(scope="module")
def flat(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_folder(tmp_path_factory.mktemp("folders") / "snapshots", classes=False)


def datamodule(path: Path, **kw) -> ImageDataModule:
    kw = {"image_size": 16, "channels": 3, "test_fraction": 0.2, "val_size": 4, **kw}
    dm = ImageDataModule("folder", path=str(path), batch_size=8, **kw)
    dm.setup("fit")
    return dm


def test_sub_folders_are_the_classes_and_every_image_is_resized(classed, caplog):
    with caplog.at_level(logging.WARNING):
        dm = datamodule(classed, image_size=[12, 20], split_seed=123)
    assert isinstance(dm, ImageData)
    assert dm.class_names == ("cats", "dogs", "owls") and dm.image_shape == (3, 12, 20)
    n_test = round(N_IMAGES * 0.2)
    assert len(dm.images("test")) == n_test
    assert len(dm.images("train")) + len(dm.images("val")) == N_IMAGES - n_test
    for split in ("train", "val", "test"):
        images = dm.images(split)
        assert images.shape[1:] == (3, 12, 20) and images.dtype == torch.float32
        assert images.min() >= 0 and images.max() <= 1
    labels = torch.cat([dm.labels(s) for s in ("train", "val", "test")])
    assert torch.bincount(labels).tolist() == [spec[0] for spec in CLASSES.values()]
    # each class's square, in its own colour, at the centre of every resized image
    centre = torch.cat([dm.images(s)[:, :, 6, 10] for s in ("train", "val", "test")])
    for k, (_, colour, mode, _) in enumerate(CLASSES.values()):
        want = torch.tensor(colour, dtype=torch.float32) / 255
        if mode == "L":  # a grey image in colour: its grey level in every channel
            want = torch.full(
                (3,), round(colour[0] * 0.299 + colour[1] * 0.587 + colour[2] * 0.114) / 255
            )
        torch.testing.assert_close(
            centre[labels == k], want.expand(int((labels == k).sum()), 3), atol=2 / 255, rtol=0
        )
    # the damaged PNG and the text file, counted in one line; the hidden file is not a file of it
    lines = [r.getMessage() for r in caplog.records if "not readable images" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith(f"skipped 2 of {N_IMAGES + 2} files under ")


def test_grey_images_of_a_folder_without_sub_folders_are_one_class(flat):
    dm = datamodule(flat, channels=1, image_size=28)
    assert dm.image_shape == (1, 28, 28) and dm.class_names == ("snapshots",)
    assert set(torch.cat([dm.labels(s) for s in ("train", "val", "test")]).tolist()) == {0}
    assert dm.images("train").shape[1:] == (1, 28, 28)
    # each square's colour in grey, ITU-R 601-2 luma as PIL converts: red 76, blue 29, grey 128
    centre = torch.cat([dm.images(s)[:, 0, 14, 14] for s in ("train", "val", "test")]) * 255
    assert len(centre) == N_IMAGES
    assert all(min(abs(v - g) for g in (76, 29, 128)) <= 2 for v in centre.tolist())
    assert {round(v / 10) for v in centre.tolist()} == {8, 3, 13}


def test_the_test_split_is_fixed_by_split_seed(classed):
    def test_set(seed: int) -> torch.Tensor:
        return datamodule(classed, split_seed=seed).images("test")

    assert torch.equal(test_set(1), test_set(1))
    assert not torch.equal(test_set(1), test_set(2))
    bigger = datamodule(classed, test_fraction=0.5)
    assert len(bigger.images("test")) == round(N_IMAGES * 0.5)


def test_the_fast_path_serves_the_classic_paths_batches(classed):
    fast, classic = datamodule(classed), datamodule(classed, fast=False)
    for make in ("train_dataloader", "val_dataloader", "test_dataloader"):
        for (x, y, _), (cx, cy, _) in zip(
            getattr(fast, make)(), getattr(classic, make)(), strict=True
        ):
            assert x.shape[1:] == (3, 16, 16)
            assert torch.equal(x, cx) and torch.equal(y, cy)


def test_what_the_folder_cannot_give_is_one_line_naming_the_key(tmp_path, classed):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AeLabError, match=rf"^data.path={empty} holds no files; point data.path"):
        datamodule(empty)
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.png").write_bytes(b"no png")
    (junk / "b.txt").write_text("text")
    with pytest.raises(
        AeLabError,
        match=rf"^data.path={junk} holds no image PIL can read \(none of its 2 files\); point",
    ):
        datamodule(junk)
    with pytest.raises(
        AeLabError, match=r"^data.val_size=100 leaves no training images: .* hold 20;"
    ):
        datamodule(classed, val_size=100)
    with pytest.raises(
        AeLabError, match=r"^data.exclude_classes must be class indices in \[0, 2\]"
    ):
        datamodule(classed, exclude_classes=[3])
    kept = datamodule(classed, exclude_classes=[1])
    assert 1 not in kept.labels("train").tolist() and 1 in kept.labels("test").tolist()


@pytest.mark.parametrize(
    "overrides, line",
    [
        ([], "data.path must be the folder of your images for data.dataset=folder"),
        (["data.path=/no/such/folder"], "data.path=/no/such/folder: no such folder; point"),
        (["data.image_size=0"], "data.image_size must be a side in pixels"),
        (["data.image_size=[32]"], "data.image_size must be a side in pixels"),
        (["data.channels=2"], "data.channels must be 1 (grey) or 3 (colour), got 2"),
        (["data.test_fraction=1"], "data.test_fraction must be a number in (0, 1)"),
        (["data.test_fraction=0"], "data.test_fraction must be a number in (0, 1)"),
    ],
)
def test_each_key_is_checked_before_any_data_is_read(classed, overrides, line):
    given = [] if not overrides or "data.path" in overrides[0] else [f"data.path={classed}"]
    # the shape the models take today; data.channels and data.image_size set data.image_shape
    shape = ["data.channels=1", "data.image_size=28"]
    found = problems(compose_cfg("data=folder", *shape, *given, *overrides))
    assert len(found) == 1 and found[0].startswith(line), found


def test_the_config_states_the_shape_from_its_own_keys(classed):
    cfg = compose_cfg("data=folder", f"data.path={classed}")
    assert list(cfg.data.image_shape) == [3, 32, 32]  # the defaults: colour, 32x32
    cfg = compose_cfg("data=folder", "data.channels=1", "data.image_size=[24,40]")
    assert list(cfg.data.image_shape) == [1, 24, 40]


def test_a_tiny_run_on_a_folder(classed, tmp_path):
    """Grey 28x28, the shape every model takes on main today; a missing data.path is one line."""
    run = run_in_process(
        "data=folder",
        f"data.path={classed}",
        "data.channels=1",
        "data.image_size=28",
        "data.val_size=4",
        "data.batch_size=8",
        "latent=4",
        *FAST,
        run_dir=tmp_path / "run",
        data_root=tmp_path,
    )
    metrics = json.loads((run.run_dir / "metrics.json").read_text())
    assert 0 <= metrics["test/mse"] < 1
    assert "image folder from " in run.out and "of 1x28x28" in run.out
    refused = run_in_process(
        "data=folder",
        "data.channels=1",
        "data.image_size=28",
        *FAST,
        run_dir=tmp_path / "refused",
        data_root=tmp_path,
        check=False,
    )
    assert refused.code == 2 and refused.message.startswith("data.path must be the folder")
    assert not (tmp_path / "refused").exists()
