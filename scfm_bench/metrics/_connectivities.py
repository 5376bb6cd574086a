"""UMAP connectivities of a kNN graph (what scib-metrics' ``NeighborsResults.knn_graph_connectivities``
gets from ``umap.fuzzy_simplicial_set``), in numpy, without umap's numba compile (~11 s per process on
2 quiet cores, ~40 s on busy ones; it ran once per process before kBET, Leiden and graph connectivity).

umap's kernels run per cell: ``smooth_knn_dist``'s binary search sums exp(-(d - rho) / sigma) over the
neighbours in order, in float64 (its float32 ``locals`` declaration is lost inside numba's prange
body: only float64 reproduces its sigmas), and ``compute_membership_strengths`` takes a float32 exp,
i.e. glibc's expf. Here the same operations run in the same order, one neighbour column at a time
across all cells, so every cell takes the same search path, and expf is glibc's algorithm in numpy.
The fuzzy union is umap's own scipy code. tests/metrics/test_connectivities.py checks equality with umap.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
from scib_metrics.nearest_neighbors import NeighborsResults

_TOL = 1e-5  # umap's SMOOTH_K_TOLERANCE
_MIN_K_DIST_SCALE = 1e-3
_FLOATMAX = np.finfo(np.float32).max
_N_ITER = 64


def _exp2_table() -> np.ndarray:
    """glibc expf's table: bits of 2^(i/32) (correctly rounded double) minus i << 47."""
    from decimal import Decimal, getcontext

    getcontext().prec = 60
    two = [float(str(Decimal(2) ** (Decimal(i) / 32))) for i in range(32)]
    return np.array(two, dtype=np.float64).view(np.uint64) - (np.arange(32, dtype=np.uint64) << np.uint64(47))


_T = _exp2_table()
_INVLN2N = float.fromhex("0x1.71547652b82fep+0") * 32
_SHIFT = float.fromhex("0x1.8p+52")
_C = (float.fromhex("0x1.c6af84b912394p-5") / 32**3, float.fromhex("0x1.ebfce50fac4f3p-3") / 32**2,
      float.fromhex("0x1.62e42ff0c52d6p-1") / 32)


@np.errstate(over="ignore", invalid="ignore")
def _expf(x: np.ndarray) -> np.ndarray:
    """exp of float32 values as glibc's expf computes it (the ARM optimized-routines algorithm: a
    32-entry table of 2^(i/32) times a cubic in double precision, rounded to float32), which numba's
    np.exp calls; numpy's own float32 exp differs in the last bit for ~1/3 of values."""
    xd = np.asarray(x, dtype=np.float32).astype(np.float64)
    z = _INVLN2N * xd
    kd = z + _SHIFT
    ki = kd.view(np.uint64)
    kd = kd - _SHIFT
    r = z - kd
    s = (_T[ki & np.uint64(31)] + (ki << np.uint64(47))).view(np.float64)
    y = (_C[0] * r + _C[1]) * (r * r) + (_C[2] * r + 1)
    out = (y * s).astype(np.float32)
    out[xd < float.fromhex("-0x1.9fe368p6")] = 0  # underflow (and -inf)
    out[xd > float.fromhex("0x1.62e42ep6")] = np.inf
    out[np.isnan(xd)] = np.nan
    return out


def smooth_knn_dist(dist: np.ndarray, k: float) -> tuple[np.ndarray, np.ndarray]:
    """umap's smooth_knn_dist (local_connectivity=1, bandwidth=1): sigma and rho per cell."""
    n = dist.shape[0]
    target = np.log2(k)
    pos = dist > 0
    has = pos.any(axis=1)
    rho = np.where(has, dist[np.arange(n), np.argmax(pos, axis=1)], 0).astype(np.float32)  # first non-zero
    d = dist[:, 1:] - rho[:, None]  # float32, as umap subtracts
    lo, hi, mid = np.zeros(n), np.full(n, _FLOATMAX, dtype=np.float64), np.ones(n)
    active = np.ones(n, dtype=bool)
    for _ in range(_N_ITER):
        idx = np.flatnonzero(active)
        if not len(idx):
            break
        dd, m = d[idx], mid[idx]
        psum = np.zeros(len(idx))
        for j in range(dd.shape[1]):  # neighbour by neighbour: umap's summation order
            col = dd[:, j]
            with np.errstate(over="ignore"):
                psum += np.where(col > 0, np.exp(-(col / m)), 1.0)
        done = np.abs(psum - target) < _TOL
        up = psum > target  # too many neighbours: sigma smaller
        l, h = lo[idx], hi[idx]
        h = np.where(up, m, h)
        l = np.where(up, l, m)
        new = np.where(up | (h < _FLOATMAX), (l + h) / 2.0, m * 2)
        keep = ~done
        lo[idx[keep]], hi[idx[keep]], mid[idx[keep]] = l[keep], h[keep], new[keep]
        active[idx[done]] = False
    sigma = mid.astype(np.float32)
    # numba's np.mean sums float32 values in a float32 accumulator, in order, then divides in float64
    row_sum = np.zeros(n, dtype=np.float32)
    for j in range(dist.shape[1]):
        row_sum += dist[:, j]
    floor_row = _MIN_K_DIST_SCALE * (row_sum.astype(np.float64) / dist.shape[1])
    floor_all = _MIN_K_DIST_SCALE * float(np.float32(np.cumsum(dist.ravel(), dtype=np.float32)[-1])) / dist.size
    floor = np.where(rho > 0, floor_row, floor_all)
    return np.where(sigma < floor, floor, sigma).astype(np.float32), rho


def umap_connectivities(indices: np.ndarray, dist: np.ndarray):
    """umap.fuzzy_simplicial_set(knn_indices, knn_dists, set_op_mix_ratio=1, local_connectivity=1)[0]."""
    import scipy.sparse

    dist = np.asarray(dist, dtype=np.float32)
    n, k = indices.shape
    sigma, rho = smooth_knn_dist(dist, float(k))
    d = dist - rho[:, None]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        vals = np.where((d <= 0) | (sigma[:, None] == 0), np.float32(1.0), _expf(-(d / sigma[:, None])))
    vals[indices == np.arange(n)[:, None]] = 0  # no self loops
    vals[indices == -1] = 0
    rows = np.repeat(np.arange(n, dtype=np.int32), k)
    cols = np.where(indices == -1, 0, indices).astype(np.int32).ravel()
    result = scipy.sparse.coo_matrix((vals.astype(np.float32).ravel(), (rows, cols)), shape=(n, n))
    result.eliminate_zeros()
    transpose = result.transpose()
    prod = result.multiply(transpose)
    result = 1.0 * (result + transpose - prod) + 0.0 * prod  # umap's union with set_op_mix_ratio = 1
    result.eliminate_zeros()
    return result


class Neighbors(NeighborsResults):
    """scib-metrics' NeighborsResults whose UMAP connectivities come from ``umap_connectivities``."""

    @cached_property
    def knn_graph_connectivities(self):
        return umap_connectivities(self.indices, self.distances)
