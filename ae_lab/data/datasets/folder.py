"""A folder of your own images (data=folder, data.path=...): any sizes, resized to
data.image_size in data.channels; classes from its sub-folders, a seeded test split."""

from ae_lab.data.definition import DatasetDefinition

DATASET = DatasetDefinition(
    name="image folder",
    format="image_folder",
    image_shape=None,  # [data.channels, *data.image_size]: conf/data/folder.yaml
    n_classes=None,  # its sub-folders (one class without any)
)
