"""Ontology-side distances of scGraph-OntoRWR: random walk with restart (RWR) + diffusion component
analysis (DCA) over the undirected CL graph (spec §3.2, §3.4b).

``rwr`` runs the reference iteration (restart 0.7, Frobenius tolerance 1e-4, at most 49 steps) and
stops at the same step, so it equals it to rounding (the closed form rst·(I − (1 − rst)P)⁻¹ does not:
it differs by ~3e-6 on the spec's toy graph). It exploits twins, nodes with identical neighbours and
weights (1,342 of the CL's 3,316 nodes fall into 399 classes, mostly leaves of one parent): the walk
never tells twins apart except by where it started, so the iteration and the DCA run exactly on the
2,373 classes (sparse r x r products, an r x r eigenproblem) and expand afterwards. ``rwr_dense`` and
``dca_svds`` are the reference written plainly, kept for the parity tests and the benchmark.

The node vectors depend only on the ontology and the edge weights, so they are computed once per
(ontology sha256, weights, dimension) and cached on disk (``configure_cache``) and in memory.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scfm_bench.atomic import atomic_path
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


def twin_classes(Wn) -> np.ndarray:
    """Class of each node (numbered in order of first appearance): nodes whose rows AND columns of the
    column-normalised matrix are identical. For the CL these are mostly leaves sharing one parent."""
    import scipy.sparse as sp

    rows, cols = sp.csr_matrix(Wn), sp.csr_matrix(Wn.T)
    rows.sort_indices()
    cols.sort_indices()
    keys: dict[tuple, int] = {}
    out = np.empty(rows.shape[0], dtype=np.intp)
    for i in range(rows.shape[0]):
        r, c = slice(rows.indptr[i], rows.indptr[i + 1]), slice(cols.indptr[i], cols.indptr[i + 1])
        key = (rows.indices[r].tobytes(), rows.data[r].tobytes(), cols.indices[c].tobytes(), cols.data[c].tobytes())
        out[i] = keys.setdefault(key, len(keys))
    return out


@dataclass(frozen=True)
class Walk:
    """Every node's RWR profile in twin-lumped form: Q = restart·I + (1 − restart)·E·Mᵀ·Eᵀ, E the
    node→class indicator and ``M[c, d]`` = (Pᵀ·Q_{K−1}ᵀ)[i, j] for any node i of class c and j of class d
    (K = ``n_iter``; the value is the same for every member, see ``rwr``)."""

    classes: np.ndarray
    M: np.ndarray
    restart: float
    n_iter: int

    @property
    def sizes(self) -> np.ndarray:
        return np.bincount(self.classes).astype(np.float64)

    def profiles(self) -> np.ndarray:
        """Q itself (n x n): row i = the RWR profile started at node i."""
        Q = (1 - self.restart) * self.M.T[np.ix_(self.classes, self.classes)]
        Q[np.diag_indices_from(Q)] += self.restart
        return Q

    def unlumped(self) -> "Walk":
        n = len(self.classes)
        return Walk(np.arange(n), self.M[np.ix_(self.classes, self.classes)], self.restart, self.n_iter)


def rwr(W, *, restart: float = RESTART, tol: float = TOL, max_iter: int = MAX_ITER) -> Walk:
    """The reference iteration Q ← rst·I + (1 − rst)·Q·P (same Frobenius stopping rule), run on twin classes.

    Twins (identical rows and columns of P) make P = E·A·Eᵀ with A the r x r lumped matrix, so every
    iterate is Q_k = rst·I + (1 − rst)·E·M_{k−1}ᵀ·Eᵀ with M_k = rst·A + (1 − rst)·A·diag(m)·M_{k−1},
    M_0 = A (m = class sizes), and ‖Q_k − Q_{k−1}‖_F = (1 − rst)·‖diag(√m)(M_{k−1} − M_{k−2})diag(√m)‖_F.
    Each step is an r x r sparse-times-dense product instead of n x n; the values are the reference's up
    to summation order (~1e-16)."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import norm as sparse_norm

    Wn = _column_normalise(W).tocsr()
    n = Wn.shape[0]
    classes = twin_classes(Wn)
    _, reps = np.unique(classes, return_index=True)
    m = np.bincount(classes).astype(np.float64)
    sm = np.sqrt(m)
    # iterate on Mt = diag(√m)·M·diag(√m): Mt_k = rst·S + (1 − rst)·S·Mt_{k−1}, S = diag(√m)·A·diag(√m),
    # Mt_0 = S, and the deltas are plain Frobenius norms of its differences
    S = (sp.diags(sm) @ Wn[reps][:, reps] @ sp.diags(sm)).tocsr()
    Mt = S.toarray()
    base = restart * Mt
    S = (1 - restart) * S
    delta = (1 - restart) * sparse_norm(Wn - sp.identity(n, format="csr"))  # step 1: Q_1 − I = (1 − rst)(P − I)ᵀ
    k = 1
    while delta >= tol and k < max_iter:
        new = S @ Mt
        new += base
        np.subtract(new, Mt, out=Mt)
        delta = (1 - restart) * np.linalg.norm(Mt)
        Mt = new
        k += 1
    return Walk(classes, Mt / sm[:, None] / sm, restart, k)


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


def dca(walk: Walk, dim: int) -> np.ndarray:
    """Node vectors U·sqrt(S) of the rank-``dim`` SVD of L = log(Q + α) − log(α), α = 1/n² (OnClass's DCA).

    The reference calls ARPACK (``svds``) on L. In lumped form L = E·Λ·Eᵀ + diag(δ) (Λ: L between
    distinct nodes of two classes, δ: the diagonal's excess), so L·Lᵀ keeps the class-constant vectors
    B·y (B = E·diag(m)^-½) and acts there as KᵀK with K = diag(√m)·Λᵀ·diag(√m) + diag(δ) (r x r);
    its only other eigenvalues are δ_c² on vectors summing to zero within a class. When every such δ_c²
    lies below the dim-th eigenvalue of KᵀK, the top ``dim`` eigenpairs of L·Lᵀ are those of KᵀK and
    U = B·y (twins get identical vectors); otherwise the walk is unlumped and the same formula runs on
    n x n. ``scipy.linalg.eigh`` of that Gram matrix gives the SVD's U and S (distances equal to ~1e-12
    on the full CL, see tests) without ARPACK's random start vector."""
    import scipy.linalg

    n = len(walk.classes)
    if not 0 < dim < n:
        raise DataError(f"DCA dimension {dim} must be between 1 and the number of ontology nodes - 1 ({n - 1}).")
    alpha = 1.0 / n**2
    m = walk.sizes
    sm = np.sqrt(m)
    lam_t = np.log((1 - walk.restart) * walk.M + alpha) - np.log(alpha)  # Λᵀ
    excess = np.log(walk.restart + (1 - walk.restart) * np.diagonal(walk.M) + alpha) - np.log(alpha) - np.diagonal(lam_t)
    K = lam_t * sm[:, None] * sm
    K[np.diag_indices_from(K)] += excess
    r = len(m)
    if dim < r:
        w, y = scipy.linalg.eigh(K.T @ K, subset_by_index=[r - dim, r - 1], driver="evr", overwrite_a=True,
                                 check_finite=False)
        if np.all(excess[m > 1] ** 2 < w[0]):
            S = np.sqrt(np.clip(w[::-1], 0.0, None))
            return y[walk.classes, ::-1] / sm[walk.classes, None] * np.sqrt(S)
    return dca(walk.unlumped(), dim)


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
            with atomic_path(path) as tmp:
                np.savez(tmp, nodes=np.array(nodes), vectors=out.vectors)
            log.info("cached ontology DCA vectors in %s", path)
    _memory[key] = out
    return out
