"""Helpers shared by the tests (not fixtures)."""

from __future__ import annotations

from suiqa.net import free_port

__all__ = ["free_port"]
