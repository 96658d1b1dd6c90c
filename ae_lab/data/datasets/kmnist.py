"""Kuzushiji-MNIST: 10 cursive Japanese (hiragana) characters, 28x28 grey, MNIST's sizes."""

from ae_lab.data.definition import DatasetDefinition

# no md5: the unpacked files' sums are not published, only the archives' (torchvision's)
DATASET = DatasetDefinition(
    name="KMNIST",
    format="idx",
    image_shape=(1, 28, 28),
    torchvision_class="KMNIST",
    train_images=60_000,
    test_images=10_000,
)
