"""The quadratic metrics' declared subsample (metrics/_subsample.py): exact at or below the threshold,
stratified, seeded and recorded above it, and close to the exact value.

Bound on the deviation: a silhouette-type score is a mean of per-cell values; on a subsample of m of
n cells its sampling error has standard deviation sd·√(1 − m/n)/√m (sd: the per-cell values' spread,
≤ 0.5 for rescaled silhouettes), plus a smaller error from estimating each cell's mean distances on the
subsample. The tests allow 6 such standard deviations, computed from the exact per-cell values.
kBET on a subsample also changes the neighbourhood scale (its graph is the subsample's); its bound
is the measured deviation at 100k cells (README) with a margin. BRAS and silhouette batch read |s|,
which the subsample's noise biases (``_abs_bias``).
"""

import numpy as np
import pytest

from scfm_bench.config.schemas import MetricSuite
from scfm_bench.metrics import MetricInputs, evaluate_suite
from scfm_bench.metrics import _subsample
from scfm_bench.metrics._subsample import stratified_subsample

QUADRATIC = ["isolated_labels", "silhouette_label", "silhouette_batch", "bras", "kbet"]


def _suite(keys):
    return MetricSuite.model_validate({"description": "t", "version": 1,
                                       "metrics": [{"id": k, "metric": k, "family": "bio"} for k in keys]})


def _data(n: int, seed: int = 0, dim: int = 20, n_labels: int = 6, n_batches: int = 4):
    """Overlapping labels (silhouettes well inside (0, 1)), the last label confined to half the batches,
    uneven batch sizes, a partial batch effect."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_labels, n)
    p = np.arange(n_batches, 0, -1) / (n_batches * (n_batches + 1) / 2)
    batch = rng.choice(n_batches, n, p=p)
    last = labels == n_labels - 1
    batch[last] = batch[last] % max(1, n_batches // 2)
    X = (rng.normal(scale=1.5, size=(n_labels, dim))[labels] + 0.4 * rng.normal(size=(n_batches, dim))[batch]
         + rng.normal(size=(n, dim)))
    return X.astype(np.float32), np.char.add("t", labels.astype(str)), np.char.add("b", batch.astype(str))


def _by_id(outcomes):
    return {o.id: o for o in outcomes}


def _sampling_sd(exact, labels, m: int) -> float:
    """Standard deviation of a mean of per-cell silhouettes over the sampled cells of the smallest label
    (the label-averaged scores are no worse), from the exact per-cell values."""
    cells = exact["silhouette_label"].units.values
    n, smallest = len(labels), np.unique(labels, return_counts=True)[1].min()
    m_label = m * smallest / n
    return float(np.std(cells)) * np.sqrt(1 - m / n) / np.sqrt(m_label)


def _abs_bias(labels, batch, m: int) -> float:
    """Batch silhouettes enter BRAS / silhouette batch as |s|: the subsample's error ε in each cell's s
    (its mean distances estimated from the sampled cells of each batch: relative error ≲ 1/√cells)
    biases |s| up by at most E|ε| ≤ 1/√(smallest sampled label×batch stratum)."""
    _, counts = np.unique(np.char.add(np.char.add(labels, "|"), batch), return_counts=True)
    return float(1 / np.sqrt(counts.min() * m / len(labels)))


def test_stratified_subsample_keeps_every_stratum_and_is_seeded():
    strata = np.array(["a"] * 900 + ["b"] * 95 + ["c"] * 5)
    idx = stratified_subsample(strata, 100, seed=3, min_per_stratum=2)
    counts = {s: int((strata[idx] == s).sum()) for s in "abc"}
    assert counts == {"a": 90, "b": 9, "c": 2}  # floor(share · 100), at least 2
    assert np.array_equal(idx, np.sort(idx)) and len(np.unique(idx)) == len(idx)
    assert np.array_equal(idx, stratified_subsample(strata, 100, seed=3, min_per_stratum=2))
    assert not np.array_equal(idx, stratified_subsample(strata, 100, seed=4, min_per_stratum=2))
    assert np.array_equal(stratified_subsample(strata, 1000, seed=0), np.arange(1000))


def test_subsample_is_declared_seeded_and_close_to_exact(monkeypatch):
    # 2 labels x 2 batches: kBET's k0 is at its cap (70) on the subsample as on all cells
    n, m = 3000, 1500
    X, labels, batch = _data(n, n_labels=2, n_batches=2)
    keys = ["isolated_labels", "silhouette_label", "bras", "kbet"]
    exact = _by_id(evaluate_suite(_suite(keys), MetricInputs(X=X, labels=labels, batch=batch, exact_quadratic=True)))
    # at the threshold: every cell, values as before, nothing declared
    monkeypatch.setattr(_subsample, "QUADRATIC_MAX_CELLS", n)
    at = _by_id(evaluate_suite(_suite(keys[:3]), MetricInputs(X=X, labels=labels, batch=batch, seed=1)))
    assert all(at[k].value == exact[k].value and "sampling" not in at[k].params for k in keys[:3])
    monkeypatch.setattr(_subsample, "QUADRATIC_MAX_CELLS", m)
    sub = _by_id(evaluate_suite(_suite([*keys, "graph_connectivity"]), MetricInputs(X=X, labels=labels, batch=batch)))
    assert "sampling" not in sub["graph_connectivity"].params  # not quadratic: every cell
    sd, bias = _sampling_sd(exact, labels, m), _abs_bias(labels, batch, m)
    for k in keys:
        s = sub[k].params["sampling"]
        assert s["method"] == "stratified" and s["strata"] == "label×batch" and s["of"] == n and s["seed"] == 0
        assert m - 3 <= s["n"] <= m  # floor of each of the 3 strata's share
        # kBET: measured +0.017..+0.030 here (3 seeds); see the module docstring
        bound = 0.05 if k == "kbet" else 6 * sd + (bias if k == "bras" else 0)
        assert abs(sub[k].value - exact[k].value) <= bound, (k, sub[k].value, exact[k].value, bound)
    # the run seed draws the cells: same seed, same value; another seed, another draw
    again, other = (_by_id(evaluate_suite(_suite(["silhouette_label"]), MetricInputs(X=X, labels=labels, batch=batch,
                                                                                   seed=s))) for s in (0, 1))
    assert again["silhouette_label"].value == sub["silhouette_label"].value
    assert other["silhouette_label"].value != sub["silhouette_label"].value
    assert other["silhouette_label"].params["sampling"]["seed"] == 1
    # per-cell units keep the dataset's cell indices (same cells for every model: paired comparisons)
    units = sub["silhouette_label"].units
    assert len(units.ids) == sub["silhouette_label"].params["sampling"]["n"] and units.ids.max() < n
    assert set(zip(labels[units.ids], batch[units.ids])) == set(zip(labels, batch))
    assert np.isclose(units.values.mean(), sub["silhouette_label"].value)


@pytest.mark.slow
def test_subsample_deviation_at_100k_cells(monkeypatch):
    """A 50,000-cell subsample of 100,000 cells (half the default threshold's sample, so a looser draw
    than any default run makes) against the exact values."""
    n = 100_000
    monkeypatch.setattr(_subsample, "QUADRATIC_MAX_CELLS", 50_000)
    X, labels, batch = _data(n, seed=1)
    suite = _suite(QUADRATIC)
    exact = _by_id(evaluate_suite(suite, MetricInputs(X=X, labels=labels, batch=batch, exact_quadratic=True)))
    sub = _by_id(evaluate_suite(suite, MetricInputs(X=X, labels=labels, batch=batch, seed=0)))
    m = _subsample.QUADRATIC_MAX_CELLS
    sd, bias = _sampling_sd(exact, labels, m), _abs_bias(labels, batch, m)
    for k in QUADRATIC:
        assert sub[k].params["sampling"]["of"] == n
        bound = 0.02 if k == "kbet" else 6 * sd + (bias if k in ("bras", "silhouette_batch") else 0)
        assert abs(sub[k].value - exact[k].value) <= bound, (k, sub[k].value, exact[k].value, bound)
