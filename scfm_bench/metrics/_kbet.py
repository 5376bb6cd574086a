"""kBET per label (scib-metrics 0.5.10 ``kbet_per_label``), made reproducible.

scib-metrics' value moved between calls and processes (0.6997 / 0.7001 / 0.7091 on one embedding)
because its diffusion-map step has two sources of hidden state: ARPACK's start vector (``eigsh``
without ``v0`` draws from ARPACK's own generator, which advances with every call in the process) and
the approximate pynndescent search in diffusion space (``random_state=None``: numba-side RNG state
and parallel threads, which numpy's global seed does not control). Here the start vector is drawn
from ``seed`` and the diffusion-space neighbours are exact (``exact_knn``), so the value depends only
on the inputs and the seed. Everything else (transitions, k0 rule, components, the chi² test)
follows scib-metrics line by line; tests/metrics/test_kbet.py checks
equality with scib-metrics' function given the same start vector and exact neighbours.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from scfm_bench.metrics._base import usable_cores

_EPS = 1e-8  # scib-metrics' diffusion_nn adds it to the eigenvalues
_SIZE_MAX = 2**31 - 1
_ARPACK_THREADED_MIN = 4_000  # cells of a label from which ARPACK gains from BLAS threads (measured)


def arpack_v0(n: int, seed: int) -> np.ndarray:
    """The seeded ARPACK start vector (uniform on [-1, 1), like ARPACK's own draw)."""
    return np.random.default_rng(seed).uniform(-1.0, 1.0, n)


def diffusion_nn(conn, k: int, n_comps: int, seed: int):
    """scib-metrics' diffusion_nn with a seeded eigen start vector and exact neighbours."""
    import scipy.sparse.linalg
    from scib_metrics.nearest_neighbors import NeighborsResults
    from scib_metrics.utils._diffusion_nn import _compute_transitions
    from threadpoolctl import threadpool_limits

    from scfm_bench.metrics._neighbors import exact_knn

    transitions = _compute_transitions(conn).astype(np.float64)
    n_comps = min(transitions.shape[0] - 1, n_comps)
    # ARPACK's BLAS calls are small: on labels of 200 or 2,000 cells more OpenBLAS threads than one
    # cost time (kBET on 2,000 / 20,000 cells in 10 labels, 2 idle cores: 0.50 / 4.0 s vs 0.33 / 3.5 s;
    # 6x longer on 2 busy cores), on labels of 6,000 they save it (60,000 cells: 11.3-11.9 s vs 14-20 s,
    # 3 runs each); the result is the same
    threads = usable_cores() if transitions.shape[0] >= _ARPACK_THREADED_MIN else 1
    with threadpool_limits(threads, user_api="blas"):
        evals, evecs = scipy.sparse.linalg.eigsh(transitions, k=n_comps, which="LM",
                                                 v0=arpack_v0(transitions.shape[0], seed))
    evals, evecs = evals.astype(np.float32)[::-1], evecs.astype(np.float32)[:, ::-1]
    evals += _EPS
    scaled = np.array([e if e == 1 else e / (1 - e) for e in evals])
    embedding = evecs * scaled
    idx, dist = exact_knn(embedding, min(k + 1, embedding.shape[0] - 1))
    return NeighborsResults(indices=idx, distances=dist.astype(np.float32))


def kbet_acceptance(indices: np.ndarray, batches: np.ndarray, alpha: float) -> float:
    """scib-metrics' ``kbet`` acceptance rate (chi² test of each neighbourhood's batch counts), in
    numpy float32 like its jax kernel, without a jax compile for every label's array shape."""
    from scipy.special import gammainc

    codes = np.asarray(pd.Categorical(batches).codes)
    n_batches = len(np.unique(codes))
    freq = np.bincount(codes, minlength=n_batches).astype(np.float32) / np.float32(len(codes))
    neigh = codes[indices]
    observed = np.stack([(neigh == j).sum(axis=1) for j in range(n_batches)], axis=1).astype(np.float32)
    expected = freq * np.float32(indices.shape[1])
    stat = (np.square(observed - expected) / expected).sum(axis=1)
    p = 1 - gammainc(np.float32((n_batches - 1) / 2), stat / 2)
    return float((p >= alpha).mean())


def kbet_per_label(knn, batches, labels, *, alpha: float = 0.05, diffusion_n_comps: int = 100,
                   seed: int = 0) -> tuple[float, dict[str, float]]:
    """Mean kBET acceptance over labels (NaN labels ignored), and the per-label values."""
    import scipy.sparse.csgraph

    batches = np.asarray(pd.Categorical(batches).codes)
    labels = np.asarray(labels)
    conn = knn.knn_graph_connectivities.tocsr()
    per_label: dict[str, float] = {}
    for clus in np.unique(labels):
        mask = labels == clus
        sub = conn[mask, :][:, mask]
        sub.sort_indices()
        n_obs = sub.shape[0]
        b = batches[mask]
        if n_obs < 10 or len(np.unique(b)) == 1:  # too small or a single batch: no test
            per_label[str(clus)] = np.nan
            continue
        k0 = int(min(70, max(10, np.floor(np.mean(pd.Series(b).value_counts()) / 4))))
        if k0 * n_obs >= _SIZE_MAX:
            k0 = int(np.floor(_SIZE_MAX / n_obs))
        n_comp, comp = scipy.sparse.csgraph.connected_components(sub, connection="strong")
        if n_comp > 1:
            # kBET only on components of at least 3·k0 cells, and only if they hold 75 % of the label
            sizes = pd.Series(comp).value_counts()
            keep = np.flatnonzero(np.isin(comp, sizes[sizes >= 3 * k0].index))
            if len(keep) / len(comp) < 0.75:
                per_label[str(clus)] = 0.0  # i.e. 100 % rejection
                continue
            sub = sub[keep, :][:, keep]
            sub.sort_indices()
            b = b[keep]
        try:
            nn = diffusion_nn(sub, k=k0, n_comps=min(diffusion_n_comps, sub.shape[0] - 1), seed=seed)
            per_label[str(clus)] = kbet_acceptance(nn.indices, b, alpha)
        except ValueError:  # scib-metrics: a failed diffusion map counts as 100 % rejection
            per_label[str(clus)] = 0.0
    return float(np.nanmean(list(per_label.values()))), per_label
