"""kBET (metrics/_kbet.py): equal to scib-metrics' kbet_per_label given the same randomness, and
reproducible — the same value in a fresh process, after other metrics, with 1 or 2 BLAS threads.

scib-metrics' own value is not reproducible (ARPACK's start vector advances with every eigsh call
in a process; its diffusion-space pynndescent search has unseeded numba-side state), so the
parity test hands scib-metrics' function the seeded start vector and exact neighbours we use.
"""

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from scfm_bench.metrics import MetricInputs
from scfm_bench.metrics._kbet import arpack_v0, kbet_per_label
from scfm_bench.registry import METRICS

ROOT = Path(__file__).resolve().parents[2]


def _scib_kbet_same_randomness(monkeypatch, knn, batch, labels, seed=0):
    import scib_metrics
    import scib_metrics.utils._diffusion_nn as dn
    import scipy.sparse.linalg
    from scib_metrics.nearest_neighbors import NeighborsResults

    from scfm_bench.metrics._neighbors import exact_knn

    eigsh = scipy.sparse.linalg.eigsh
    monkeypatch.setattr(scipy.sparse.linalg, "eigsh", lambda A, **kw: eigsh(A, **{"v0": arpack_v0(A.shape[0], seed), **kw}))

    def exact(X, n_neighbors):
        idx, dist = exact_knn(X, n_neighbors)
        return NeighborsResults(indices=idx, distances=dist)

    monkeypatch.setattr(dn, "nearest_neighbors", SimpleNamespace(pynndescent=exact))
    return float(scib_metrics.kbet_per_label(knn, batch, labels))


@pytest.mark.parametrize("seed,n_per,n_batches", [(0, 150, 3), (1, 200, 2), (2, 120, 4)])
def test_kbet_equals_scib_metrics_given_same_randomness(make_blobs, monkeypatch, seed, n_per, n_batches):
    X, labels, batch = make_blobs(n_per=n_per, n_labels=4, n_batches=n_batches, dim=12, batch_shift=0.3, seed=seed)
    knn = MetricInputs(X=X).knn50
    ours, per_label = kbet_per_label(knn, batch, labels)
    assert 0.05 < ours < 0.95 and len(per_label) == 4  # a mixed case, not a trivial 0 or 1
    assert ours == pytest.approx(_scib_kbet_same_randomness(monkeypatch, knn, batch, labels), abs=1e-12)


@pytest.mark.slow
def test_kbet_equals_scib_metrics_on_more_than_8192_cells(make_blobs, monkeypatch):
    X, labels, batch = make_blobs(n_per=2100, n_labels=4, n_batches=3, dim=12, batch_shift=0.3, seed=5)
    knn = MetricInputs(X=X).knn50
    assert knn.n_samples > 8192
    ours = kbet_per_label(knn, batch, labels)[0]
    assert ours == pytest.approx(_scib_kbet_same_randomness(monkeypatch, knn, batch, labels), abs=1e-12)


def test_kbet_same_value_with_threaded_arpack(make_blobs, monkeypatch):
    import scfm_bench.metrics._kbet as kb

    X, labels, batch = make_blobs(n_per=150, n_labels=4, n_batches=3, dim=12, batch_shift=0.3, seed=0)
    knn = MetricInputs(X=X).knn50
    single = kbet_per_label(knn, batch, labels)
    monkeypatch.setattr(kb, "_ARPACK_THREADED_MIN", 0)  # every label's ARPACK on all the cores
    monkeypatch.setattr(kb, "usable_cores", lambda: 2)
    assert kbet_per_label(knn, batch, labels) == single


_SCRIPT = """
import sys
sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
from conftest import blobs
from scfm_bench.metrics import MetricInputs
from scfm_bench.registry import METRICS
X, labels, batch = blobs(n_per=150, n_labels=4, n_batches=3, dim=12, batch_shift=0.3, seed=0)
print(repr(METRICS.get("kbet")(MetricInputs(X=X, labels=labels, batch=batch))))
"""


@pytest.mark.slow
def test_kbet_reproducible_fresh_process_after_other_metrics_and_blas_threads(make_blobs):
    from threadpoolctl import threadpool_limits

    X, labels, batch = make_blobs(n_per=150, n_labels=4, n_batches=3, dim=12, batch_shift=0.3, seed=0)
    inputs = MetricInputs(X=X, labels=labels, batch=batch)
    first = METRICS.get("kbet")(inputs)
    for key in ("silhouette_label", "clisi", "ilisi", "graph_connectivity"):  # other metrics run first
        METRICS.get(key)(inputs)
    METRICS.get("nmi_ari_leiden")(inputs, optimize_resolution=False)
    np.random.rand(1000)  # and the global RNG is disturbed
    assert METRICS.get("kbet")(inputs) == first
    for threads in (1, 2):
        with threadpool_limits(limits=threads):
            assert METRICS.get("kbet")(MetricInputs(X=X, labels=labels, batch=batch)) == first
    env = {**os.environ, "PYTHONHASHSEED": "123"}
    out = subprocess.run([sys.executable, "-c", _SCRIPT.format(root=str(ROOT), tests=str(ROOT / "tests"))],
                         capture_output=True, text=True, env=env, check=True)
    assert float(out.stdout.strip().splitlines()[-1]) == first


@pytest.mark.parametrize("seed,n_batches", [(0, 2), (1, 3), (2, 5)])
def test_kbet_acceptance_equals_scib_metrics_kbet(seed, n_batches):
    """The numpy chi² test equals scib-metrics' jax kbet on random neighbourhoods (unbalanced batches)."""
    import scib_metrics
    from scib_metrics.nearest_neighbors import NeighborsResults

    from scfm_bench.metrics._kbet import kbet_acceptance

    rng = np.random.default_rng(seed)
    n, k = 9000, 31
    batches = rng.choice([f"b{i}" for i in range(n_batches)], size=n, p=np.arange(1, n_batches + 1) / sum(range(1, n_batches + 1)))
    # neighbourhoods biased towards the cell's own batch, so acceptance is neither 0 nor 1
    same = np.flatnonzero(batches == batches[0])
    idx = np.where(rng.random((n, k)) < 0.3, rng.choice(same, size=(n, k)), rng.integers(0, n, size=(n, k)))
    ref = float(scib_metrics.kbet(NeighborsResults(indices=idx, distances=np.zeros(idx.shape, np.float32)), batches)[0])
    assert 0.02 < ref < 0.98
    assert kbet_acceptance(idx, batches, 0.05) == ref
