"""MNIST: handwritten digits 0-9 (LeCun, Cortes and Burges), 28x28 grey."""

from ae_lab.data.definition import DatasetDefinition

DATASET = DatasetDefinition(
    name="MNIST",
    format="idx",
    image_shape=(1, 28, 28),
    torchvision_class="MNIST",
    train_images=60_000,
    test_images=10_000,
    # the unpacked official files (md5sum of each, as ../shared/data/MNIST/MD5SUMS lists them)
    md5={
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    # the digits themselves (torchvision's "0 - zero" ... are long for an axis)
    classes=tuple("0123456789"),
)
