"""The sparsity penalties under their earlier home (``ae_lab.models.objectives.sparse``)."""

from ae_lab.models.objectives.sparse import kl_sparsity_penalty, l1_penalty

__all__ = ["kl_sparsity_penalty", "l1_penalty"]
