"""ae_lab: autoencoders against a PCA baseline on MNIST, configured with Hydra."""

__version__ = "0.1.0"
