"""What an autoencoder is trained to do, one module each: chosen in the model's config by
``objective: {_target_: ...}`` whatever its encoder and decoder."""

from ae_lab.models.objectives.base import Objective, Reconstruction
from ae_lab.models.objectives.contractive import Contractive
from ae_lab.models.objectives.iwae import ImportanceWeighted
from ae_lab.models.objectives.sparse import Sparse
from ae_lab.models.objectives.variational import Variational
from ae_lab.models.objectives.vq import VectorQuantized

__all__ = [
    "Contractive",
    "ImportanceWeighted",
    "Objective",
    "Reconstruction",
    "Sparse",
    "Variational",
    "VectorQuantized",
]
