from ae_lab.callbacks.images import ReconstructionGrid
from ae_lab.callbacks.pca import PCABaseline

__all__ = ["PCABaseline", "ReconstructionGrid"]
