"""Sui QA serving stack: shared plumbing (paths, typed settings, the `suiqa` CLI, offline tiny models)."""

__version__ = "0.1.0"
