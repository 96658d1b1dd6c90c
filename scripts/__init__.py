"""Maintainers' tools, run from the repository root: ``python -m scripts.results`` (the
results page), ``scripts/bench.py`` and ``scripts/threads_bench.py`` (speed figures); the other
modules are their parts."""
