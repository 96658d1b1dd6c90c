from ae_lab.data.loader import TensorBatchLoader
from ae_lab.data.mnist import MNISTDataModule
from ae_lab.data.transforms import Binarize, Corruption, GaussianNoise, NoCorruption, PixelMask

__all__ = [
    "Binarize",
    "Corruption",
    "GaussianNoise",
    "MNISTDataModule",
    "NoCorruption",
    "PixelMask",
    "TensorBatchLoader",
]
