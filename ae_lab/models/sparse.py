"""The sparsity penalties under their earlier home (``ae_lab.models.objectives.sparse``)."""

from ae_lab.models.objectives.sparse import kl_sparsity_penalty, l1_penalty
from ae_lab.models.zoo import SparseAE

__all__ = ["SparseAE", "kl_sparsity_penalty", "l1_penalty"]
