"""``ConvAE`` under its earlier home (``ae_lab.models.zoo``)."""

from ae_lab.models.zoo import ConvAE

__all__ = ["ConvAE"]
