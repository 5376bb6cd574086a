"""scib-metrics 0.5.10's Leiden NMI/ARI (``nmi_ari_cluster_labels_leiden``) with the graph built once.

scib-metrics rebuilds the igraph graph from the connectivities for each of the 10 resolutions of its
sweep (python-igraph turns the sparse matrix into a Python list of edge tuples); the graph is the same
every time, and the Leiden run at each resolution depends only on that graph, the resolution and the
seed it reseeds igraph's generator with. Building it once and reseeding per resolution therefore gives
its clusterings, in any order and in any process; tests/metrics/test_leiden.py checks equality with its
function. python-igraph holds the GIL, so the sweep is parallel in forked processes that inherit the
graph (never pickled: 10⁶ cells make tens of millions of weighted edges): by default on graphs of
PARALLEL_MIN_CELLS cells or more, over the process's cores.
"""

from __future__ import annotations

import random
import sys

import numpy as np

RESOLUTIONS = np.array([2 * x / 10 for x in range(1, 11)])  # scib-metrics' sweep: 0.2, 0.4, ..., 2.0
PARALLEL_MIN_CELLS = 20_000  # below, a resolution takes < 0.3 s and forking buys nothing
_GRAPH = None  # in a forked worker: the graph being swept


def leiden_graph(conn):
    """The undirected igraph graph scib-metrics clusters: both directions of every edge, as scanpy does."""
    import igraph

    g = igraph.Graph.Weighted_Adjacency(conn, mode="directed")
    g.to_undirected(mode="each")
    return g


def leiden_membership(g, resolution: float, seed: int) -> np.ndarray:
    import igraph

    igraph.set_random_number_generator(random.Random(seed))
    return np.asarray(g.community_leiden(objective_function="modularity", weights="weight", resolution=resolution).membership)


def _set_graph(g) -> None:
    global _GRAPH
    _GRAPH = g


def _worker_membership(resolution: float, seed: int) -> np.ndarray:
    return leiden_membership(_GRAPH, resolution, seed).astype(np.int32)


def sweep_jobs(n_cells: int, n_jobs: int | None, n_resolutions: int = len(RESOLUTIONS)) -> int:
    """Processes for the sweep: ``n_jobs``, or by default the usable cores on graphs of
    PARALLEL_MIN_CELLS cells or more; 1 where forking is unavailable or not allowed (not Linux, or
    inside a daemonic worker, which may not have children)."""
    import multiprocessing

    from scfm_bench.metrics._base import usable_cores

    if sys.platform != "linux" or multiprocessing.current_process().daemon:
        return 1
    if n_jobs is None:
        n_jobs = usable_cores() if n_cells >= PARALLEL_MIN_CELLS else 1
    return max(1, min(int(n_jobs), n_resolutions))


def sweep_memberships(g, resolutions, seed: int, n_jobs: int) -> list[np.ndarray]:
    """The Leiden clustering at each resolution, in ``n_jobs`` forked processes when > 1 (a forked
    worker's initargs are inherited, not pickled)."""
    if n_jobs == 1:
        return [leiden_membership(g, r, seed) for r in resolutions]
    import multiprocessing
    import warnings

    with warnings.catch_warnings():
        # the children only run igraph's C code and numpy: no lock another thread (BLAS, JAX) holds
        warnings.filterwarnings("ignore", message=".*use of fork\\(\\) may lead to deadlocks", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="os.fork\\(\\) was called", category=RuntimeWarning)  # JAX's
        with multiprocessing.get_context("fork").Pool(n_jobs, initializer=_set_graph, initargs=(g,)) as pool:
            return pool.starmap(_worker_membership, [(r, seed) for r in resolutions], chunksize=1)


def _nmi_ari(labels: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    return (float(normalized_mutual_info_score(labels, pred, average_method="arithmetic")),
            float(adjusted_rand_score(labels, pred)))


def nmi_ari_leiden(conn, labels: np.ndarray, *, optimize_resolution: bool = True, resolution: float = 1.0,
                   seed: int = 42, n_jobs: int | None = None, resolutions=None) -> dict[str, float]:
    """NMI at the resolution with the best NMI over the sweep (ARI at that resolution), or at
    ``resolution``; the sweep runs in ``sweep_jobs(n, n_jobs)`` processes (the same values in any number).
    ``resolutions`` replaces scib-metrics' sweep (RESOLUTIONS), e.g. a shorter one for 10⁶ cells: a
    declared option whose value equals the full sweep's only when it holds the best resolution."""
    g = leiden_graph(conn)
    labels = np.asarray(labels)
    if not optimize_resolution:
        nmi, ari = _nmi_ari(labels, leiden_membership(g, resolution, seed))
        return {"nmi": nmi, "ari": ari}
    sweep = RESOLUTIONS if resolutions is None else [float(r) for r in resolutions]
    jobs = sweep_jobs(g.vcount(), n_jobs, len(sweep))
    out = [_nmi_ari(labels, pred) for pred in sweep_memberships(g, sweep, seed, jobs)]
    nmi, ari = out[int(np.argmax([o[0] for o in out]))]
    return {"nmi": nmi, "ari": ari}
