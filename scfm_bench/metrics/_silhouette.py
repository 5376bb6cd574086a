"""Silhouette samples (scib-metrics 0.5.10 ``silhouette_samples``) without an n x n matrix and fast on CPUs.

Every silhouette-type metric (silhouette label, isolated labels, silhouette batch, BRAS) needs, for each
cell, the sum of its distances to the cells of each cluster. Cells are sorted by cluster, so each
cluster is a contiguous column range; the distances are produced tile by tile (a row chunk x a column
range of one cluster, small enough to stay in cache) by one float32 GEMM on centred (euclidean) or
unit-norm (cosine) rows, and summed per row into float64 totals. Row chunks run on a thread pool with
single-threaded BLAS: every tile is computed the same way whatever the number of threads, so values do
not depend on it. scib-metrics builds the same sums from a jax distance matrix chunk by chunk (~20x
slower on 2 cores); tests/metrics/test_silhouette.py checks equality with its functions.

``silhouette_samples`` keeps the last few results per embedding (weakly referenced), so silhouette label
and isolated labels on one embedding share one pass.
"""

from __future__ import annotations

import weakref
from typing import Literal

import numpy as np
import pandas as pd

from scfm_bench.metrics._base import usable_cores

_ROWS = 256  # rows per chunk
_TILE = 4096  # columns per tile: 256 x 4096 float32 = 4 MiB, in cache
_MEMO_SIZE = 4
_memo: list[tuple[weakref.ref, np.ndarray, str, str, np.ndarray]] = []


def cluster_distance_sums(X: np.ndarray, codes: np.ndarray, n_codes: int,
                          metric: Literal["euclidean", "cosine"] = "euclidean") -> np.ndarray:
    """(n, n_codes) float64: for each cell, the sum of its distances to the cells with each code
    (its own distance 0 included), computed without holding more than a tile of distances."""
    from threadpoolctl import threadpool_info, threadpool_limits

    X64 = np.asarray(X, dtype=np.float64)
    if metric == "euclidean":
        X64 = X64 - X64.mean(axis=0)  # centring shrinks |x|² + |y|² - 2xy, hence float32 cancellation
    elif metric == "cosine":
        X64 = X64 / np.linalg.norm(X64, axis=1, keepdims=True)
    else:
        raise ValueError(f"unknown silhouette metric {metric!r}; use euclidean or cosine")
    order = np.argsort(codes, kind="stable")
    Xs = np.ascontiguousarray(X64[order], dtype=np.float32)
    sq = np.einsum("ij,ij->i", Xs, Xs, dtype=np.float64).astype(np.float32)
    bounds = np.searchsorted(codes[order], np.arange(n_codes + 1))
    tiles = [(c, s, min(s + _TILE, bounds[c + 1])) for c in range(n_codes) for s in range(bounds[c], bounds[c + 1], _TILE)]
    n = Xs.shape[0]
    sums = np.zeros((n, n_codes), dtype=np.float64)

    def rows(r0: int) -> None:
        r1 = min(n, r0 + _ROWS)
        Xr, out = Xs[r0:r1], sums[r0:r1]
        for c, s, e in tiles:
            d = Xr @ Xs[s:e].T
            if metric == "euclidean":
                d *= -2
                d += sq[r0:r1, None]
                d += sq[None, s:e]
                np.maximum(d, 0, out=d)
                np.sqrt(d, out=d)
            else:
                np.subtract(1, d, out=d)
                np.clip(d, 0, 2, out=d)
            lo, hi = max(r0, s), min(r1, e)  # a cell's distance to itself is 0, not GEMM rounding
            if lo < hi:
                d[np.arange(lo - r0, hi - r0), np.arange(lo - s, hi - s)] = 0
            out[:, c] += d.sum(axis=1, dtype=np.float64)

    blas = max((p.get("num_threads", 1) for p in threadpool_info() if p.get("user_api") == "blas"), default=1)
    workers = max(1, min(blas, usable_cores()))
    with threadpool_limits(1, user_api="blas"):
        if workers == 1:
            for r0 in range(0, n, _ROWS):
                rows(r0)
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(rows, range(0, n, _ROWS)))
    out = np.empty_like(sums)
    out[order] = sums
    return out


def silhouette_samples(X: np.ndarray, labels: np.ndarray, metric: Literal["euclidean", "cosine"] = "euclidean",
                       between_cluster_distances: Literal["nearest", "mean_other", "furthest"] = "nearest") -> np.ndarray:
    """scib_metrics.utils.silhouette_samples: per-cell (b - a) / max(a, b), NaN -> 0, in float64.
    Remembered for the last few (embedding, labels, options)."""
    labels = np.asarray(labels)
    for ref, lab, m, b, val in _memo:
        if ref() is X and m == metric and b == between_cluster_distances and np.array_equal(lab, labels):
            return val
    s = _samples(X, labels, metric, between_cluster_distances)
    try:
        _memo.insert(0, (weakref.ref(X), labels.copy(), metric, between_cluster_distances, s))
        del _memo[_MEMO_SIZE:]
    except TypeError:  # not weak-referenceable (e.g. a list): no memo
        pass
    return s


def _samples(X, labels: np.ndarray, metric: str, between_cluster_distances: str) -> np.ndarray:
    codes = np.asarray(pd.Categorical(labels).codes, dtype=np.int64)
    freq = np.bincount(codes).astype(np.float64)
    sums = cluster_distance_sums(X, codes, len(freq), metric)
    rows = np.arange(len(codes))
    intra = sums[rows, codes]
    if between_cluster_distances == "mean_other":
        inter = (sums.sum(axis=1) - intra) / (freq.sum() - freq[codes])
    elif between_cluster_distances in ("nearest", "furthest"):
        means = sums / freq
        means[rows, codes] = np.inf if between_cluster_distances == "nearest" else -np.inf
        inter = means.min(axis=1) if between_cluster_distances == "nearest" else means.max(axis=1)
    else:
        raise ValueError("between_cluster_distances must be one of nearest, mean_other, furthest")
    with np.errstate(divide="ignore", invalid="ignore"):
        intra = intra / (freq[codes] - 1)
        return np.nan_to_num((inter - intra) / np.maximum(intra, inter))


def silhouette_batch(X: np.ndarray, labels: np.ndarray, batch: np.ndarray, *, rescale: bool = True,
                     metric: Literal["euclidean", "cosine"] = "euclidean",
                     between_cluster_distances: str = "nearest") -> float:
    """scib_metrics.silhouette_batch (and BRAS): per label, |silhouette| of batches among its cells
    (1 - |s| if rescale), averaged within labels, then over labels (labels with one batch, or one cell
    per batch, skipped)."""
    labels, batch = np.asarray(labels), np.asarray(batch)
    X = np.asarray(X)
    per_label = []
    for group in np.unique(labels):
        mask = labels == group
        b = batch[mask]
        n_batches = len(np.unique(b))
        if n_batches == 1 or n_batches == int(mask.sum()):
            continue
        s = np.abs(_samples(X[mask], b, metric, between_cluster_distances))
        per_label.append(float(np.mean(1 - s if rescale else s)))
    if not per_label:
        raise ValueError("silhouette batch: no label has cells from two or more batches")
    return float(np.mean(per_label))
