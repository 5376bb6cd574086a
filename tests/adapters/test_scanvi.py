"""scANVI: labels outside the reference never reach the model (no leakage), and reference labels do."""

from __future__ import annotations

import numpy as np
import pytest

from scfm_bench.adapters.scanvi import SCANVI, UNLABELLED, visible_labels
from scfm_bench.exceptions import CellSkipped

FAST = {"max_epochs_cap": 2, "scanvi_max_epochs": 2, "reference_batches": ["batch_0", "batch_1"]}


def _with_labels(ad, labels):
    out = ad.copy()
    out.obs["cell_type"] = labels
    return out


def test_query_labels_do_not_change_the_embedding(tiny_preprocessed):
    """Scrambling the labels of the query batch (batch_2) leaves the scANVI latent bit-identical;
    scrambling reference labels changes it, so the test can see a label that leaks."""
    ad = tiny_preprocessed
    labels = ad.obs["cell_type"].astype(str).to_numpy()
    query = ad.obs["batch"].astype(str).to_numpy() == "batch_2"
    rng = np.random.default_rng(0)
    scrambled_query = labels.copy()
    scrambled_query[query] = rng.permutation(np.unique(labels))[0]  # every query cell relabelled to one type
    scrambled_ref = labels.copy()
    scrambled_ref[~query] = rng.permutation(labels[~query])
    base = SCANVI(FAST, seed=0).embed_batch(ad)
    np.testing.assert_array_equal(base, SCANVI(FAST, seed=0).embed_batch(_with_labels(ad, scrambled_query)))
    assert not np.allclose(base, SCANVI(FAST, seed=0).embed_batch(_with_labels(ad, scrambled_ref)), atol=1e-4)
    assert base.shape == (ad.n_obs, 30) and np.isfinite(base).all()


def test_visible_labels_hide_everything_but_the_reference(tiny_preprocessed):
    ad = tiny_preprocessed.copy()
    from scfm_bench.adapters.scanvi import SCANVIParams

    vis = visible_labels(ad, SCANVIParams(**FAST), "scanvi")
    query = ad.obs["batch"].astype(str).to_numpy() == "batch_2"
    assert (vis[query] == UNLABELLED).all() and (vis[~query] == ad.obs["cell_type"].astype(str).to_numpy()[~query]).all()
    ad.obs["scfm_role"] = np.where(query, "reference", "query")  # a pair's role column wins over reference_batches
    vis = visible_labels(ad, SCANVIParams(**FAST), "scanvi")
    assert (vis[~query] == UNLABELLED).all() and (vis[query] != UNLABELLED).all()


def test_without_a_reference_scanvi_is_skipped(tiny_preprocessed):
    with pytest.raises(CellSkipped, match="reference_batches"):
        SCANVI({"max_epochs_cap": 2}, seed=0).embed_batch(tiny_preprocessed)
