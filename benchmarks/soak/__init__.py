"""Bounded soak test of the running pipeline API (see benchmarks/soak/run.py)."""
