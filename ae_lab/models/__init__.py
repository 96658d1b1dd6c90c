"""The models: one ``Autoencoder`` composed of an encoder, a decoder and an objective (each chosen
in ``conf/model/*.yaml`` by ``_target_``), and the CNN classifier."""

from ae_lab.models.autoencoder import Autoencoder
from ae_lab.models.classifier import CNNClassifier
from ae_lab.models.module import LabModule
from ae_lab.models.networks import ConvDecoder, ConvEncoder, DenseDecoder, DenseEncoder
from ae_lab.models.objectives import (
    Contractive,
    ImportanceWeighted,
    Objective,
    Reconstruction,
    Sparse,
    Variational,
    VectorQuantized,
)
from ae_lab.models.vae import is_variational
from ae_lab.models.zoo import ContractiveAE, ConvAE, ConvVAE, DenseAE, DenseVAE, SparseAE

# the name the callbacks and earlier code know the autoencoders by
AutoencoderModule = Autoencoder

__all__ = [
    "Autoencoder",
    "AutoencoderModule",
    "CNNClassifier",
    "Contractive",
    "ContractiveAE",
    "ConvAE",
    "ConvDecoder",
    "ConvEncoder",
    "ConvVAE",
    "DenseAE",
    "DenseDecoder",
    "DenseEncoder",
    "DenseVAE",
    "ImportanceWeighted",
    "LabModule",
    "Objective",
    "Reconstruction",
    "Sparse",
    "SparseAE",
    "Variational",
    "VectorQuantized",
    "is_variational",
]
