"""The image shape every model is built for, importable without torch (the config checks run
before torch loads). Every shipped dataset has it (28x28 grey); a dataset's own sizes live in its
definition (``ae_lab/data/datasets/``)."""

IMAGE_SHAPE = (1, 28, 28)
N_PIXELS = IMAGE_SHAPE[1] * IMAGE_SHAPE[2]
