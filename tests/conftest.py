"""Shared fixtures: tiny seeded data, an isolated cache, and the shared real-data folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ci_guard import skip_or_fail_in_ci

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own cache dir; nothing touches the user's ~/.cache."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("SCFM_BENCH_CACHE_DIR", str(cache))
    for var in ("SCFM_BENCH_SEED", "SCFM_BENCH_DEVICE", "SCFM_BENCH_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    return cache


def blobs(n_per: int = 40, n_labels: int = 4, n_batches: int = 3, dim: int = 10, batch_shift: float = 0.0, seed: int = 0):
    """Labels as well-separated Gaussian blobs, optionally shifted per batch. Returns X, labels, batch."""
    rng = np.random.default_rng(seed)
    n = n_per * n_labels
    labels = np.repeat([f"type{i}" for i in range(n_labels)], n_per)
    batch = np.array([f"b{i % n_batches}" for i in range(n)])
    centres = rng.normal(scale=5.0, size=(n_labels, dim))
    shifts = rng.normal(scale=batch_shift, size=(n_batches, dim)) if batch_shift else np.zeros((n_batches, dim))
    X = centres[np.repeat(np.arange(n_labels), n_per)] + rng.normal(size=(n, dim))
    X += shifts[np.array([i % n_batches for i in range(n)])]
    return X.astype(np.float32), labels, batch


@pytest.fixture
def shared_data() -> Path:
    """The real-data folder beside the checkout. Absent: skip, except under CI=true, where ../shared always
    sits beside the checkout and a skip would hide a broken path, so the test fails."""
    if not SHARED_DATA.is_dir():
        skip_or_fail_in_ci(f"real-data folder {SHARED_DATA} is absent (only present beside the development checkout)")
    return SHARED_DATA



@pytest.fixture
def make_blobs():
    return blobs


@pytest.fixture(scope="session")
def tiny_preprocessed():
    """A small preprocessed synthetic dataset with the runner's field declaration."""
    from scfm_bench.data import BUILDERS, preprocess

    ad = BUILDERS["synthetic"](n_cells=300, n_genes=200, n_batches=3, n_cell_types=4, seed=0)
    ad = preprocess(ad, n_top_genes=100, n_pcs=20)
    ad.uns["scfm_bench_fields"] = {"label": "cell_type", "batch": "batch"}
    return ad
