"""MNIST's fixed sizes, importable without torch (the config checks run before torch loads)."""

IMAGE_SHAPE = (1, 28, 28)
N_PIXELS = IMAGE_SHAPE[1] * IMAGE_SHAPE[2]
TRAIN_IMAGES = 60_000
