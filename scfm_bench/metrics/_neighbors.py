"""k-nearest-neighbour graphs in scib-metrics' NeighborsResults form, and the per-embedding graph that
every task and metric on one embedding shares.

``exact`` is a float32 brute-force search (faiss's on CPU, torch's on a GPU) whose candidates are
re-measured in float64, so distances equal scanpy's (sklearn's brute force) and a cell's distance to
itself (or to an identical cell) is exactly 0 — the UMAP connectivities read the nearest non-zero
distance, so the ~1e-6 self-distances of a plain float32 search changed them by up to 0.7. Equal
distances are ordered by cell index, as scanpy's brute-force search does. No n x n matrix is ever held.
``hnsw`` is faiss-cpu's HNSW graph (approximate, deterministic: single-threaded build). ``auto`` is
exact up to ``EXACT_MAX_CELLS`` cells, ``hnsw`` above; the record's params name the search (``knn``).
Chosen by measurement (benchmarks/bench_metrics_scale.py --knn-compare; 200,000 synthetic cells x 50
dims, k = 90, recall@90 against a float32 brute force on 20,000 cells): on 2 quiet cores the exact
search took 92 s (recall 1.0) and faiss HNSW (M=32, efSearch=128) 79 s (recall 0.958), so 200k is
where they cost the same; the exact search grows as n² (25x at 1M cells), HNSW as ~n log n. Earlier, on
2 shared cores: HNSW 264 s; pynndescent (scib-metrics' Benchmarker search) 487 s plus a 60 s numba
compile in every process, recall 0.994; faiss IVF-Flat (nprobe 16) 75 s but recall 0.42. pynndescent
(``knn_method: pynndescent``) is kept for users who want the Benchmarker's search.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

EXACT_MAX_CELLS = 200_000
APPROXIMATE = "hnsw"  # the search ``auto`` uses above EXACT_MAX_CELLS
_HNSW_M, _HNSW_EF_CONSTRUCTION, _HNSW_EF_SEARCH = 32, 80, 128
_GPU_CHUNK_BYTES = 2 * 2**30  # float32 distance block per chunk on a GPU
_FAISS_ROWS = 16_384  # query rows per faiss call (its own tiles bound the memory)
_REFINE_BYTES = 32 * 2**20  # float64 differences held at once per thread in the re-measurement
_MARGIN = 16  # extra float32 candidates re-measured in float64


def resolve_method(n_cells: int, method: str) -> str:
    """The search ``method`` means on ``n_cells`` cells (``auto``: exact up to EXACT_MAX_CELLS, then APPROXIMATE)."""
    if method == "auto":
        return "exact" if n_cells <= EXACT_MAX_CELLS else APPROXIMATE
    return method


def knn(X: np.ndarray, k: int, *, method: str = "auto", seed: int = 0, device: str = "cpu"):
    from scfm_bench.metrics._connectivities import Neighbors  # NeighborsResults, connectivities without numba

    n = X.shape[0]
    k = min(k, n - 1)
    method = resolve_method(n, method)
    if method == "exact":
        idx, dist = exact_knn(X, k, device=device)
        return Neighbors(indices=idx, distances=dist)
    if method == "hnsw":
        idx, dist = hnsw_knn(X, k)
        return Neighbors(indices=idx, distances=dist)
    if method == "pynndescent":
        from scib_metrics.nearest_neighbors import pynndescent

        nn = pynndescent(np.asarray(X, dtype=np.float32), n_neighbors=k, random_state=seed, n_jobs=1)
        return Neighbors(indices=nn.indices, distances=nn.distances)
    raise ValueError(f"unknown kNN method {method!r}; use auto, exact, hnsw or pynndescent")


def hnsw_knn(X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """faiss HNSW (flat storage, M=32, efConstruction=80, efSearch=max(128, k)): the k approximate
    nearest cells of every cell, self first at distance exactly 0. The graph is built on one thread
    (faiss draws the levels from a fixed seed; a parallel build's graph depends on thread timing), so
    the neighbours are the same in every run; the search, one query per thread, is parallel."""
    try:
        import faiss
    except ImportError as exc:
        raise ImportError("the approximate kNN above 200,000 cells needs faiss-cpu: pip install faiss-cpu") from exc
    X32 = np.ascontiguousarray(X, dtype=np.float32)
    n = X32.shape[0]
    threads = faiss.omp_get_max_threads()
    index = faiss.IndexHNSWFlat(X32.shape[1], _HNSW_M)
    index.hnsw.efConstruction = _HNSW_EF_CONSTRUCTION
    try:
        faiss.omp_set_num_threads(1)
        index.add(X32)
    finally:
        faiss.omp_set_num_threads(threads)
    index.hnsw.efSearch = max(_HNSW_EF_SEARCH, k)
    d2, idx = index.search(X32, k)
    if (idx < 0).any():
        raise RuntimeError(f"HNSW returned fewer than {k} neighbours for some cells; use knn_method: exact")
    # self first at 0 (UMAP connectivities read the nearest non-zero distance): move it to the front,
    # or put it in place of the farthest neighbour in the rare row where the search missed it
    own = idx == np.arange(n)[:, None]
    missing = ~own.any(axis=1)
    idx[missing, -1], own[missing, -1] = np.flatnonzero(missing), True
    order = np.argsort(~own, axis=1, kind="stable")
    idx, d2 = np.take_along_axis(idx, order, axis=1), np.take_along_axis(d2, order, axis=1)
    d2[:, 0] = 0
    return idx.astype(np.int64), np.sqrt(np.maximum(d2, 0)).astype(np.float32)


def exact_knn(X: np.ndarray, k: int, *, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """The k nearest cells of every cell (self included, at distance 0), sorted by (distance, index).

    Candidates come from a float32 search (faiss on CPU, torch on a GPU); they are re-measured in
    float64 and checked against a float32 error bound, rows that fail the check are redone in float64,
    so the neighbours are the exact float64 kNN whatever the threads; distances are then rounded the way
    sklearn's brute force (scanpy's search) rounds them."""
    X64 = np.asarray(X, dtype=np.float64)
    X64 = X64 - X64.mean(axis=0)  # centring shrinks norms, hence float32 cancellation in |x|²+|y|²-2xy
    sq = np.einsum("ij,ij->i", X64, X64)
    n, dim = X64.shape
    m = int(min(n, k + _MARGIN))
    # bound on the float32 error of a squared distance (norm and dot-product rounding, generous constant)
    err = 2 * (dim + 4) * np.finfo(np.float32).eps * (sq + sq.max())
    indices = np.empty((n, k), dtype=np.int64)
    distances = np.empty((n, k), dtype=np.float32)
    X32 = X64.astype(np.float32)
    blocks = _faiss_candidates(X32, m) if device == "cpu" else _torch_candidates(X32, m, device)
    for s, vals, cand in blocks:
        e = s + cand.shape[0]
        idx, dist = _refine(X64, s, cand, k)
        if m < n:
            # every point outside the candidates has float32 d² >= the largest candidate's; unless that
            # clears the k-th exact distance by the error bound, redo the row in float64
            outside = vals.max(axis=1).astype(np.float64)
            for r in np.flatnonzero(outside - err[s:e] <= dist[:, -1]):
                row = sq[s + r] + sq - 2 * (X64 @ X64[s + r])
                idx[r], dist[r] = _refine(X64, s + r, np.argpartition(row, m - 1)[None, :m], k)
        # sklearn (hence scanpy) reports sqrt of the float32-rounded squared distance, in float32
        indices[s:e], distances[s:e] = idx, np.sqrt(dist.astype(np.float32))
    return indices, distances


def _faiss_candidates(X32: np.ndarray, m: int):
    """(first row, float32 squared distances, indices) of the m nearest cells, for blocks of rows, by
    faiss's brute-force search (BLAS GEMM tiles with heap selection: half the time of GEMM + torch.topk
    on 30k cells x 50 dims)."""
    import faiss

    for s in range(0, X32.shape[0], _FAISS_ROWS):
        d2, cand = faiss.knn(X32[s:s + _FAISS_ROWS], X32, m)
        yield s, d2, cand


def _torch_candidates(X32: np.ndarray, m: int, device: str):
    """The same from torch's GEMM + top-k on ``device`` (a GPU), chunked to bound its memory."""
    import torch

    n = X32.shape[0]
    Xt = torch.from_numpy(X32).to(device)
    sq = (Xt * Xt).sum(dim=1)
    chunk = max(1, min(n, _GPU_CHUNK_BYTES // (4 * n)))
    with torch.no_grad():
        for s in range(0, n, chunk):
            d2 = torch.addmm(sq[None, :], Xt[s:s + chunk], Xt.T, alpha=-2).add_(sq[s:s + chunk, None])
            vals, cand = torch.topk(d2, m, dim=1, largest=False, sorted=False)
            yield s, vals.cpu().numpy(), cand.cpu().numpy()


def _refine(X64: np.ndarray, start: int, cand: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact float64 squared distances from rows start.. to their candidates (a difference, then its
    square: no cancellation); the k smallest by (distance, index). Blocks of rows bound the memory and
    run in threads (numpy's gather and einsum release the GIL; memory-bound, 2.5 s of 7.8 for 60k cells
    on one thread)."""
    from concurrent.futures import ThreadPoolExecutor

    from scfm_bench.metrics._base import usable_cores

    rows = max(1, _REFINE_BYTES // (8 * cand.shape[1] * X64.shape[1]))
    d2 = np.empty(cand.shape)

    def block(a: int) -> None:
        b = min(a + rows, cand.shape[0])
        diff = X64[cand[a:b]] - X64[start + a:start + b, None, :]
        d2[a:b] = np.einsum("rmd,rmd->rm", diff, diff)

    starts = range(0, cand.shape[0], rows)
    workers = min(len(starts), usable_cores())
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(block, starts))
    else:
        for a in starts:
            block(a)
    order = np.lexsort((cand, d2), axis=1)[:, :k]
    return np.take_along_axis(cand, order, axis=1), np.take_along_axis(d2, order, axis=1)


def pack_knn(distances) -> np.ndarray:
    """A sparse kNN distance matrix (scanpy's/BBKNN's ``distances``: self left out) as the array an
    adapter with ``output = "knn_graph"`` returns: [indices | distances], rows sorted by distance with
    the cell itself first at distance 0 (scib-metrics' NeighborsResults form). Rows with fewer stored
    neighbours (a zero distance is not stored) are cut to the shortest row."""
    import scipy.sparse as sp

    D = sp.csr_matrix(distances)
    D.sort_indices()
    k = int(np.diff(D.indptr).min())
    idx = np.empty((D.shape[0], k + 1), dtype=np.int64)
    dist = np.zeros((D.shape[0], k + 1))
    idx[:, 0] = np.arange(D.shape[0])
    for i in range(D.shape[0]):
        lo, hi = D.indptr[i], D.indptr[i + 1]
        order = np.lexsort((D.indices[lo:hi], D.data[lo:hi]))[:k]
        idx[i, 1:], dist[i, 1:] = D.indices[lo:hi][order], D.data[lo:hi][order]
    return np.hstack([idx, dist])


class NeighborGraph:
    """The kNN graph of one embedding, built once at the largest k asked for (at least 90, the
    scib-metrics convention) and subset for smaller k; created by the caller once per embedding and
    handed to every task on it, so zero-shot clustering and batch integration share it. Subsets are
    cached too, so their UMAP connectivities are computed once."""

    def __init__(self, X: np.ndarray | None, *, min_k: int = 90, fixed=None):
        self.X = X
        self.min_k = min_k
        self.fixed = fixed  # a model's own graph (NeighborsResults), used whatever k a metric asks for
        self._full: dict[str, Any] = {}
        self._subsets: dict[tuple[str, int], Any] = {}

    @classmethod
    def from_packed(cls, packed: np.ndarray) -> "NeighborGraph":
        """A model's own kNN graph (e.g. BBKNN's) in place of a search on an embedding (X is None), as scIB
        scores graph outputs: every graph metric reads that graph as it is, whatever its k."""
        from scfm_bench.metrics._connectivities import Neighbors

        k = packed.shape[1] // 2
        return cls(None, fixed=Neighbors(indices=packed[:, :k].astype(np.int64), distances=packed[:, k:]))

    def get(self, k: int, method: str = "auto"):
        if self.fixed is not None:
            return self.fixed
        k = min(k, self.X.shape[0] - 1)
        full = self._full.get(method)
        if full is None or full.n_neighbors < k:
            full = self._full[method] = knn(self.X, max(k, self.min_k), method=method)
            self._subsets = {key: v for key, v in self._subsets.items() if key[0] != method}
            log.debug("kNN graph (%s, k=%d) on %d cells", method, full.n_neighbors, self.X.shape[0])
        if k == full.n_neighbors:
            return full
        key = (method, k)
        if key not in self._subsets:
            self._subsets[key] = full.subset_neighbors(k)
        return self._subsets[key]
