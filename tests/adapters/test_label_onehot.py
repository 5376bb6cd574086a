from __future__ import annotations

import numpy as np
import pytest

from scfm_bench.adapters.label_onehot import LabelOneHotControl
from scfm_bench.exceptions import CellSkipped


def test_label_onehot_encodes_labels_with_small_seeded_noise(tiny_preprocessed):
    X = LabelOneHotControl(seed=3).embed_batch(tiny_preprocessed)
    labels = tiny_preprocessed.obs["cell_type"].astype(str).to_numpy()
    names = np.unique(labels)
    assert X.shape == (tiny_preprocessed.n_obs, len(names))
    # the largest coordinate is the cell's own label; the noise is small
    assert (names[X.argmax(axis=1)] == labels).all()
    onehot = (labels[:, None] == names[None, :]).astype(np.float32)
    assert 0.03 < np.std(X - onehot) < 0.07
    np.testing.assert_array_equal(X, LabelOneHotControl(seed=3).embed_batch(tiny_preprocessed))
    assert not np.array_equal(X, LabelOneHotControl(seed=4).embed_batch(tiny_preprocessed))


def test_label_onehot_without_label_column_skips(tiny_preprocessed):
    ad = tiny_preprocessed.copy()
    ad.uns["scfm_bench_fields"] = {"label": None, "batch": "batch"}
    with pytest.raises(CellSkipped, match="label"):
        LabelOneHotControl().embed_batch(ad)


def test_label_onehot_encodes_the_cl_id_on_a_reference_query_pair(tiny_preprocessed):
    """The two sides of a pair name one type differently; the ceiling must put them in one column."""
    ad = tiny_preprocessed.copy()
    labels = ad.obs["cell_type"].astype(str).to_numpy()
    half = np.arange(ad.n_obs) >= ad.n_obs // 2
    ad.obs["cl"] = np.char.add("CL:", labels.astype(str))
    ad.obs["cell_type"] = np.where(half, np.char.add(labels.astype(str), " (query wording)"), labels)
    ad.obs["scfm_role"] = np.where(half, "query", "reference")
    ad.uns["scfm_bench_fields"] = {"label": "cell_type", "batch": "batch", "ontology_id": "cl"}
    X = LabelOneHotControl(seed=0).embed_batch(ad)
    assert X.shape[1] == len(np.unique(labels))
    assert (X[~half].argmax(axis=1)[:, None] == X[half].argmax(axis=1)[None, :])[
        labels[~half][:, None] == labels[half][None, :]].all()
    del ad.obs["scfm_role"]  # not a pair: the label text, as before
    assert LabelOneHotControl(seed=0).embed_batch(ad).shape[1] == 2 * len(np.unique(labels))
