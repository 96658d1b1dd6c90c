"""The argument types the parts of a model share, with their ranges (``annotated_types``), which
the config checks read from the constructors' signatures."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from annotated_types import Ge, Len, doc

# (channels, height, width) of the images a model is built for: the dataset's
# (``data.image_shape``); MNIST's by default
ImageShape = Annotated[Sequence[Annotated[int, Ge(1)]], Len(3, 3)]
MNIST_SHAPE: tuple[int, int, int] = (1, 28, 28)
LatentDim = Annotated[int, Ge(1), doc("the bottleneck size; set latent=N")]
Widths = Annotated[Sequence[Annotated[int, Ge(1)]], doc("layer widths, e.g. [256,64]; [] for none")]


def shape_of(image_shape: ImageShape) -> tuple[int, int, int]:
    """``image_shape`` as a tuple of three integers (a config gives a list)."""
    c, h, w = (int(n) for n in image_shape)
    return c, h, w
