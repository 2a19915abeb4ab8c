"""Benchmarks of the PanDA monitor (run from the project root, e.g. `python bench/dispatch.py`)."""
