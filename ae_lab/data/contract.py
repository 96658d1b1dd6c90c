"""What the models and callbacks may rely on in a run's datamodule, declared once.

``ImageDataModule`` (``ae_lab.data.datamodule``) is the implementation for every dataset; a
datamodule of your own that offers the same works with every model and callback. Nothing else of a
datamodule is read outside ``ae_lab/data``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

    from ae_lab.data.definition import DatasetDefinition
    from ae_lab.data.transforms import Corruption

# the keys of every batch a model's step receives (after ``on_after_batch_transfer``):
# ``input`` what the model sees (the corrupted image), ``target`` the clean image it should
# reconstruct, ``label`` the class index; images are float in [0, 1], shape (B, *image_shape)
BATCH_KEYS = ("input", "target", "label")
# an optional fourth key: the clean image itself, present only where ``target`` is not it
# (``data.binarize_target`` makes the target a binarized copy). Every reported MSE is against
# ``clean_image(batch)``, so it means the same whatever the target.
CLEAN = "clean"
# the splits ``images`` and ``labels`` take: a seeded split of the training images into
# ``train`` and ``val``, and the official test images as ``test``
SPLITS = ("train", "val", "test")


@runtime_checkable
class ImageData(Protocol):
    """A LightningDataModule of labelled images, as ae_lab's models and callbacks use it."""

    # the dataset's definition (its name, files, sizes) and, from it, the source of the run's data:
    # ``dataset`` names the definition, ``root`` the folder, ``val_size`` and ``split_seed`` the
    # split (the downstream classifier trains on the same data and caches by these)
    definition: DatasetDefinition
    dataset: str
    root: str
    val_size: int
    split_seed: int
    # the input corruption, applied to whole batches on the device (``corruption=`` when built)
    corruption: Corruption
    # the classes left out of ``train`` and ``val`` (kept in ``test``), sorted; () for none: the
    # novelty evaluation (``ae_lab.evaluation.novelty``) scores them against the rest
    exclude_classes: tuple[int, ...]

    @property
    def class_names(self) -> tuple[str, ...]:
        """Label ``k``'s name, for figures and tables (logged names keep the index ``k``)."""
        ...

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one image."""
        ...

    def images(self, split: str) -> torch.Tensor:
        """All clean images of a split, float in [0, 1], (N, *image_shape), on the data's device
        (the PCA baseline fits on ``images("train")``). Valid after ``setup``."""
        ...

    def labels(self, split: str) -> torch.Tensor:
        """The class indices of ``images(split)``, in the same order."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """The random state that carries over between epochs (batch order, training corruption),
        saved in checkpoints so that a resumed run matches an unbroken one."""
        ...

    def load_state_dict(self, state_dict: dict[str, Any]) -> None: ...


def clean_image(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The clean image of a batch: ``batch["clean"]`` where the target is a binarized copy of it,
    else the target itself."""
    return batch.get(CLEAN, batch["target"])


def label_names(datamodule: Any, n: int | None = None) -> list[str]:
    """Names for the labels ``0 .. n-1`` (all the dataset's classes when ``n`` is None): the
    datamodule's ``class_names``, else the indices themselves (no datamodule, as when a trainer
    tests plain dataloaders, or one that names no classes: then ten, as every shipped dataset
    has)."""
    names = list(getattr(datamodule, "class_names", None) or ())
    n = (len(names) or 10) if n is None else n
    return [names[k] if k < len(names) else str(k) for k in range(n)]
