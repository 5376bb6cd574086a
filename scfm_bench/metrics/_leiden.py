"""scib-metrics 0.5.10's Leiden NMI/ARI (``nmi_ari_cluster_labels_leiden``) with the graph built once.

scib-metrics rebuilds the igraph graph from the connectivities for each of the 10 resolutions of its
sweep (python-igraph turns the sparse matrix into a Python list of edge tuples); the graph is the same
every time, and the Leiden run at each resolution depends only on that graph, the resolution and the
seed it reseeds igraph's generator with. Building it once and reseeding per resolution therefore gives
its clusterings; tests/metrics/test_leiden.py checks equality with its function.
"""

from __future__ import annotations

import random

import numpy as np

RESOLUTIONS = np.array([2 * x / 10 for x in range(1, 11)])  # scib-metrics' sweep: 0.2, 0.4, ..., 2.0


def leiden_graph(conn):
    """The undirected igraph graph scib-metrics clusters: both directions of every edge, as scanpy does."""
    import igraph

    g = igraph.Graph.Weighted_Adjacency(conn, mode="directed")
    g.to_undirected(mode="each")
    return g


def nmi_ari_at(g, labels: np.ndarray, resolution: float, seed: int) -> tuple[float, float]:
    import igraph
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    igraph.set_random_number_generator(random.Random(seed))
    pred = np.asarray(g.community_leiden(objective_function="modularity", weights="weight", resolution=resolution).membership)
    return (float(normalized_mutual_info_score(labels, pred, average_method="arithmetic")),
            float(adjusted_rand_score(labels, pred)))


def nmi_ari_leiden(conn, labels: np.ndarray, *, optimize_resolution: bool = True, resolution: float = 1.0,
                   seed: int = 42, n_jobs: int = 1) -> dict[str, float]:
    """NMI at the resolution with the best NMI over the sweep (ARI at that resolution), or at
    ``resolution``; ``n_jobs`` > 1 runs the resolutions in joblib processes (a copy of the graph each)."""
    g = leiden_graph(conn)
    labels = np.asarray(labels)
    if not optimize_resolution:
        nmi, ari = nmi_ari_at(g, labels, resolution, seed)
        return {"nmi": nmi, "ari": ari}
    if n_jobs == 1:
        out = [nmi_ari_at(g, labels, r, seed) for r in RESOLUTIONS]
    else:
        from joblib import Parallel, delayed

        out = Parallel(n_jobs=n_jobs)(delayed(nmi_ari_at)(g, labels, r, seed) for r in RESOLUTIONS)
    nmi, ari = out[int(np.argmax([o[0] for o in out]))]
    return {"nmi": nmi, "ari": ari}
