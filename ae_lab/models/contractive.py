"""The contractive penalty's Jacobian under its earlier home
(``ae_lab.models.objectives.contractive``)."""

from ae_lab.models.objectives.contractive import jacobian_frobenius_sq
from ae_lab.models.zoo import ContractiveAE

__all__ = ["ContractiveAE", "jacobian_frobenius_sq"]
