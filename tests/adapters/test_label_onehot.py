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
