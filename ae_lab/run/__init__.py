"""Running one job: the entrypoint, its errors, its folder, checkpoints, exact resume, stopping."""
