"""Fixtures of the runner tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from quick_suite import quick_suite


@pytest.fixture
def suite(tmp_path) -> Path:
    """Two models x two seeds on tiny synthetic data, three cheap metrics."""
    return quick_suite(tmp_path / "suite", seeds=(0, 1))
