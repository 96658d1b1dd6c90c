"""``DenseAE`` under its earlier home (``ae_lab.models.zoo``)."""

from ae_lab.models.zoo import DenseAE

__all__ = ["DenseAE"]
