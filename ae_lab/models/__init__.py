from ae_lab.models.base import AutoencoderModule, LabModule
from ae_lab.models.classifier import CNNClassifier
from ae_lab.models.dense import DenseAE
from ae_lab.models.vae import ConvVAE, DenseVAE, VariationalAutoencoder

__all__ = [
    "AutoencoderModule",
    "CNNClassifier",
    "ConvVAE",
    "DenseAE",
    "DenseVAE",
    "LabModule",
    "VariationalAutoencoder",
]
