"""The ground floor: what every package may use (errors, locks, checkpoint files, run folders and
their records, hardware, small value checks). Nothing here imports anything of ae_lab above it."""
