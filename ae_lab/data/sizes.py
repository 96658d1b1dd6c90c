"""The image shape the models on this version are built for, importable without torch (the
config checks run before torch loads): MNIST's 1x28x28. A dataset's own shape lives in its
definition (``ae_lab/data/datasets/``) and reaches the config as ``data.image_shape``; the config
check refuses a dataset of another shape until the models are built from that."""

IMAGE_SHAPE = (1, 28, 28)
N_PIXELS = IMAGE_SHAPE[1] * IMAGE_SHAPE[2]
