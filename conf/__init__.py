"""ae_lab's Hydra configs. Installed, this folder is the package ``ae_lab.conf``, which Hydra
reads as ``pkg://ae_lab.conf`` and which must be a regular package for it (setup.py,
ae_lab/config/location.py)."""
