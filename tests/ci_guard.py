"""Skips that must not hide a failure in CI."""

from __future__ import annotations

import os

import pytest


def skip_or_fail_in_ci(why: str) -> None:
    """Skip locally; under CI=true (where ../shared and `make setup`'s oracle packages are always present)
    a skip would hide a broken path or install step, so the test fails."""
    if os.environ.get("CI", "").strip().lower() in ("true", "1"):
        pytest.fail(f"{why}; CI={os.environ['CI']} requires it", pytrace=False)
    pytest.skip(why)
