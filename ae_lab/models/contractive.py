"""The contractive penalty's Jacobian under its earlier home
(``ae_lab.models.objectives.contractive``)."""

from ae_lab.models.objectives.contractive import jacobian_frobenius_sq

__all__ = ["jacobian_frobenius_sq"]
