"""Fixtures of the per-rule tests in ``tests/core/``: an upper, and an overlay of ``lower`` under it."""

from __future__ import annotations

import pytest

import unionfs  # noqa: F401
from fs.memoryfs import MemoryFS

from unionfs import OverlayFS


@pytest.fixture
def upper() -> MemoryFS:
    return MemoryFS()


@pytest.fixture
def overlay(lower, upper) -> OverlayFS:
    return OverlayFS(lower, upper)
