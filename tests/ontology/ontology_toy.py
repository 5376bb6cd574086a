"""The toy ontology and embedding of the worked examples (metric spec §3.5, §4.2; the spec is not in the repo).

TOY_EDGES (child, parent), drawn with parents above; CL:7 has two parents:

                CL:0
             /   |    \
         CL:1   CL:2   CL:8
         /  \      \   /
      CL:3  CL:4    CL:7
      /  \
   CL:5  CL:6

DAG_GADGET adds two minimal common ancestors for T and S: P1, P2 under CL:0; M under P2; T under P1
and M; S under P1 and P2 (so T-P1 is 1 step, T-M-P2 is 2).

Where the pinned numbers come from: the spec's author ran the scFM-Bench authors' own functions
(``random_walk.py``, ``Utils_Handler.DCA_vector``, ``scGraph_cl_ontology.py``; LCAD with networkx 3.6.1)
unchanged on these inputs. The tests re-derive what can be re-derived without our code (networkx
PageRank, numpy SVD, scipy correlations, networkx LCAs) and say which numbers are only pinned.
"""

import numpy as np

TOY_EDGES = [("CL:1", "CL:0"), ("CL:2", "CL:0"), ("CL:3", "CL:1"), ("CL:4", "CL:1"), ("CL:5", "CL:3"),
             ("CL:6", "CL:3"), ("CL:7", "CL:2"), ("CL:8", "CL:0"), ("CL:7", "CL:8")]
DAG_GADGET = [("P1", "CL:0"), ("P2", "CL:0"), ("M", "P2"), ("T", "P1"), ("T", "M"), ("S", "P1"), ("S", "P2")]
TEXT_VECTORS = {"CL:0": (1, 1, 1), "CL:1": (1, .2, 0), "CL:2": (0, 1, .2), "CL:3": (1, .3, .1), "CL:4": (.9, 0, .3),
                "CL:5": (1, .4, .1), "CL:6": (1, .3, .3), "CL:7": (.1, 1, .5), "CL:8": (.2, .6, 1)}
CENTRES = {"CL:4": (2, 0), "CL:5": (0, 0), "CL:6": (0.5, 0), "CL:7": (6, 5)}


def toy_embedding():
    """12 cells per label: centre + (±0.01k, ∓0.01k), k = 1..6, so every trimmed mean is the centre."""
    X, ids = [], []
    for t, (cx, cy) in CENTRES.items():
        for k in range(1, 7):
            X += [(cx + 0.01 * k, cy - 0.01 * k), (cx - 0.01 * k, cy + 0.01 * k)]
            ids += [t, t]
    return np.array(X), np.array(ids)


def write_vectors(path):
    path.write_text("".join(f"{t}\t" + "\t".join(map(str, v)) + "\n" for t, v in TEXT_VECTORS.items()))
    return path


def pagerank_profiles(edges, nodes, sources, weight=None):
    """Row s = networkx's personalised PageRank from s, with alpha = 1 - 0.7 (code not written here).

    Why it is our RWR: the reference iterates Q <- rst*I + (1 - rst)*Q*P with P = W~^T and W~ = W with
    each column divided by its sum, so P[j, i] = W[i, j] / sum_k W[k, j]; W is symmetric (undirected
    edges), so that is W[j, i] / (sum of j's edge weights): the walk's step from j to i. Row i of the
    fixed point solves q = rst*e_i + (1 - rst)*q*P: with probability 1 - rst follow an edge, else jump
    back to i. networkx's pagerank solves x = alpha*x*P_nx + (1 - alpha)*p with P_nx the out-weights
    of each node divided by their sum (the same P on an undirected graph) and p = the personalisation
    vector: so alpha = 1 - rst = 0.3 and p = e_i. Both vectors sum to 1 (no rescaling). The two differ on
    isolated nodes only (ours: a self-loop; networkx: a dangling node jumps to p), so the graphs here
    have none. rst = 0.7 is the reference's constant (scFM-Bench random_walk.py), written here rather
    than read from our module, so a changed constant there shows."""
    import networkx as nx

    G = nx.Graph()
    if weight is None:
        G.add_edges_from(edges)
    else:
        G.add_weighted_edges_from((c, p, weight(c, p)) for c, p in edges)
    assert min(d for _, d in G.degree()) >= 1 and sorted(G) == sorted(nodes)  # no dangling node
    rows = [nx.pagerank(G, alpha=0.3, personalization={s: 1.0}, tol=1e-14, max_iter=1000, weight="weight") for s in sources]
    return np.array([[r[n] for n in nodes] for r in rows])
