"""Sweeps through the engines researchers use: the sweep callback, Optuna, SLURM."""
