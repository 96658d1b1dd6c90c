from ae_lab.models.base import AutoencoderModule, LabModule
from ae_lab.models.classifier import CNNClassifier
from ae_lab.models.contractive import ContractiveAE
from ae_lab.models.conv import ConvAE
from ae_lab.models.dense import DenseAE
from ae_lab.models.sparse import SparseAE
from ae_lab.models.vae import ConvVAE, DenseVAE, VariationalAutoencoder

__all__ = [
    "AutoencoderModule",
    "CNNClassifier",
    "ContractiveAE",
    "ConvAE",
    "ConvVAE",
    "DenseAE",
    "DenseVAE",
    "LabModule",
    "SparseAE",
    "VariationalAutoencoder",
]
