"""SVHN: Street View House Numbers, 32x32 colour crops of digits 0-9 (Netzer et al.)."""

from ae_lab.data.definition import DatasetDefinition

DATASET = DatasetDefinition(
    name="SVHN",
    format="svhn_mat",
    image_shape=(3, 32, 32),
    torchvision_class="SVHN",
    train_images=73_257,
    test_images=26_032,
    # the official .mat files' sums (torchvision's SVHN.split_list; "extra" is not used)
    md5={
        "train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
        "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3",
    },
    classes=tuple("0123456789"),
)
