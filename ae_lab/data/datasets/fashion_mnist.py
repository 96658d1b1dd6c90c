"""Fashion-MNIST: Zalando's 28x28 grey images of 10 kinds of clothing, MNIST's sizes and split."""

from ae_lab.data.definition import DatasetDefinition

# no md5: the unpacked files' sums are not published, only the archives' (torchvision's)
DATASET = DatasetDefinition(
    name="Fashion-MNIST",
    format="idx",
    image_shape=(1, 28, 28),
    torchvision_class="FashionMNIST",
    train_images=60_000,
    test_images=10_000,
)
