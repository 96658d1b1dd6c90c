"""Maintainers' tools, run from the repository root: ``python -m scripts.results`` (the
results page), ``scripts/bench.py`` (speed figures)."""
