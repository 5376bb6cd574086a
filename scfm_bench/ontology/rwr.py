"""Ontology-side distances of scGraph-OntoRWR: random walk with restart (RWR) + diffusion component
analysis (DCA) over the undirected CL graph (spec §3.2, §3.4b).

``rwr`` runs the reference iteration (restart 0.7, Frobenius tolerance 1e-4, at most 49 steps) with
the transition matrix kept sparse, so each step costs O(edges x n) instead of a dense O(n^3) product;
it stops at the same step as the reference and so equals it to rounding (the closed form
rst·(I − (1 − rst)P)⁻¹ does not: it differs by ~3e-6 on the spec's toy graph). ``rwr_dense`` is the
reference iteration written densely, kept for the parity tests and the benchmark.

The node vectors depend only on the ontology and the edge weights, so they are computed once per
(ontology sha256, weights, dimension) and cached on disk (``configure_cache``) and in memory.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scfm_bench.exceptions import DataError
from scfm_bench.ontology.core import CellOntology

log = logging.getLogger(__name__)

RESTART = 0.7
TOL = 1e-4
MAX_ITER = 49  # the reference loops over range(1, 50)
DCA_DIM = 256

_cache_dir: Path | None = None
_memory: dict[str, "NodeVectors"] = {}


def configure_cache(path: Path | None) -> None:
    """Where node vectors are stored across processes (the runner sets ``<cache_dir>/ontology``)."""
    global _cache_dir
    _cache_dir = Path(path) if path is not None else None


@dataclass(frozen=True)
class NodeVectors:
    nodes: list[str]
    vectors: np.ndarray  # n x dim, U·sqrt(S) of the DCA
    weights: str
    dim: int

    @property
    def index(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.nodes)}


def read_term_vectors(path: str | Path) -> dict[str, np.ndarray]:
    """``ID<TAB>v1<TAB>...`` per line (the format of scFM-Bench's cl.ontology.langcell.emb)."""
    out = {}
    for i, line in enumerate(Path(path).read_text().splitlines(), 1):
        parts = line.strip().split("\t")
        if len(parts) < 2:
            continue
        try:
            out[parts[0]] = np.array([float(x) for x in parts[1:]])
        except ValueError:
            raise DataError(f"{path}:{i}: expected 'CL_ID<TAB>number<TAB>...'.") from None
    return out


def adjacency(onto: CellOntology, term_vectors: dict[str, np.ndarray] | None = None):
    """Symmetric sparse adjacency over ``onto.nodes``: weight 1, or the cosine of the two terms' vectors."""
    import scipy.sparse as sp

    nodes = onto.nodes
    idx = {n: i for i, n in enumerate(nodes)}
    pairs = sorted({tuple(sorted((idx[c], idx[p]))) for c, p in onto.edges})  # a pair listed twice counts once
    r = np.array([a for a, _ in pairs])
    c = np.array([b for _, b in pairs])
    if term_vectors is None:
        w = np.ones(len(pairs))
    else:
        missing = [n for n in nodes if n not in term_vectors]
        if missing:
            raise DataError(f"term vectors lack {len(missing)} ontology nodes, e.g. {missing[:5]}; every node needs one.")
        V = np.stack([term_vectors[n] for n in nodes])
        V = V / np.linalg.norm(V, axis=1, keepdims=True)
        w = np.einsum("ij,ij->i", V[r], V[c])
    n = len(nodes)
    W = sp.coo_matrix((np.r_[w, w], (np.r_[r, c], np.r_[c, r])), shape=(n, n)).tocsc()
    return nodes, W


def _column_normalise(W):
    """W̃[:, j] = W[:, j] / s_j; a column summing to 0 becomes a self-loop (as in the reference)."""
    import scipy.sparse as sp

    W = sp.csc_matrix(W, dtype=np.float64, copy=True)
    s = np.asarray(W.sum(axis=0)).ravel()
    zero = s == 0
    W = W + sp.diags(zero.astype(float))
    s[zero] = 1.0
    return W @ sp.diags(1.0 / s)


def rwr(W, *, restart: float = RESTART, tol: float = TOL, max_iter: int = MAX_ITER) -> np.ndarray:
    """Row i = the RWR profile started at node i; the reference iteration with a sparse transition matrix."""
    Wn = _column_normalise(W).tocsr()
    n = Wn.shape[0]
    Qt = np.eye(n)  # iterate on Qᵀ: Q·P = Q·Wnᵀ = (Wn·Qᵀ)ᵀ, a sparse-times-dense product without copies
    for _ in range(max_iter):
        Qt_new = (1 - restart) * (Wn @ Qt)
        Qt_new[np.diag_indices(n)] += restart
        delta = np.linalg.norm(Qt - Qt_new)  # Frobenius, as the reference's
        Qt = Qt_new
        if delta < tol:
            break
    return Qt.T


def rwr_dense(W, *, restart: float = RESTART, tol: float = TOL, max_iter: int = MAX_ITER) -> np.ndarray:
    """The reference iteration exactly as written (dense matrices); for parity tests and benchmarks."""
    W = np.array(W.toarray() if hasattr(W, "toarray") else W, dtype=np.float64)
    s = W.sum(axis=0)
    for j in np.flatnonzero(s == 0):
        W[j, j] = 1.0
        s[j] = 1.0
    P = (W / s).T
    n = W.shape[0]
    I = np.eye(n)
    Q = I.copy()
    for _ in range(max_iter):
        Q_new = restart * I + (1 - restart) * Q @ P
        delta = np.linalg.norm(Q - Q_new, "fro")
        Q = Q_new
        if delta < tol:
            break
    return Q


def dca(Q: np.ndarray, dim: int) -> np.ndarray:
    """Node vectors U·sqrt(S) of the rank-``dim`` SVD of L = log(Q + α) − log(α), α = 1/n² (OnClass's DCA).

    The reference calls ARPACK (``svds``) on L; the top eigenpairs of L·Lᵀ give the same U and S
    (distances equal to ~1e-12 on the full CL, see tests) ~3x faster, and without a random start vector."""
    import scipy.linalg

    n = Q.shape[0]
    if not 0 < dim < n:
        raise DataError(f"DCA dimension {dim} must be between 1 and the number of ontology nodes - 1 ({n - 1}).")
    alpha = 1.0 / n**2
    L = np.log(Q + alpha) - np.log(alpha)
    w, U = scipy.linalg.eigh(L @ L.T, subset_by_index=[n - dim, n - 1])
    S = np.sqrt(np.clip(w[::-1], 0.0, None))
    return U[:, ::-1] * np.sqrt(S)


def dca_svds(Q: np.ndarray, dim: int) -> np.ndarray:
    """DCA as the reference computes it (ARPACK truncated SVD of L); for parity tests and benchmarks."""
    from scipy.sparse.linalg import svds

    n = Q.shape[0]
    alpha = 1.0 / n**2
    U, S, _ = svds(np.log(Q + alpha) - np.log(alpha), k=dim, random_state=0)
    return U * np.sqrt(S)


def node_vectors(onto: CellOntology, *, weights: str = "uniform", term_vectors: str | Path | None = None,
                 dim: int = DCA_DIM) -> NodeVectors:
    """DCA node vectors of the whole ontology graph; cached per (ontology, weights, dim)."""
    if weights not in ("uniform", "cosine"):
        raise DataError(f"edge weights {weights!r}: use 'uniform' or 'cosine' (with term_vectors).")
    if (weights == "cosine") != (term_vectors is not None):
        raise DataError("weights='cosine' needs term_vectors (a TSV of term vectors), and term_vectors needs weights='cosine'.")
    vec_sha = hashlib.sha256(Path(term_vectors).read_bytes()).hexdigest() if term_vectors is not None else ""
    key = hashlib.sha256(f"{onto.sha256}|{weights}|{vec_sha}|{dim}|{RESTART}|{TOL}|{MAX_ITER}".encode()).hexdigest()[:24]
    if key in _memory:
        return _memory[key]
    path = _cache_dir / f"dca_{key}.npz" if _cache_dir is not None else None
    if path is not None and path.is_file():
        z = np.load(path, allow_pickle=False)
        out = NodeVectors(list(z["nodes"]), z["vectors"], weights, dim)
    else:
        nodes, W = adjacency(onto, read_term_vectors(term_vectors) if term_vectors is not None else None)
        out = NodeVectors(nodes, dca(rwr(W), dim), weights, dim)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, nodes=np.array(nodes), vectors=out.vectors)
            tmp.replace(path)
            log.info("cached ontology DCA vectors in %s", path)
    _memory[key] = out
    return out
