"""Cell-type geometry shared by scGraph and scGraph-OntoRWR: trimmed-mean centroids, column-max
normalised centroid distances, and the per-column correlations of two such matrices."""

from __future__ import annotations

import numpy as np

from scfm_bench.exceptions import CellFailed


def finite_embedding(X) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if not np.isfinite(X).all():
        raise CellFailed(f"the embedding has {int((~np.isfinite(X)).sum())} non-finite values; not scored.")
    return X


def kept_types(labels, min_cells: int) -> tuple[list[str], list[str]]:
    """Types with at least ``min_cells`` cells (sorted) and the excluded ones."""
    values, counts = np.unique(np.asarray(labels).astype(str), return_counts=True)
    return [v for v, c in zip(values, counts) if c >= min_cells], [v for v, c in zip(values, counts) if c < min_cells]


def centroid_distances(X, labels, types: list[str], trim: float) -> np.ndarray:
    """D[r, c] = ||m_r − m_c|| between per-type trimmed means, each column divided by its maximum."""
    from scipy.spatial.distance import cdist
    from scipy.stats import trim_mean

    labels = np.asarray(labels).astype(str)
    M = np.stack([trim_mean(X[labels == t], trim, axis=0) for t in types])
    D = cdist(M, M)
    with np.errstate(invalid="ignore", divide="ignore"):
        return D / D.max(axis=0, keepdims=True)


def weighted_pearson(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> float:
    """Pearson correlation with optional weights; NaN when either side has no spread."""
    w = np.full(len(x), 1.0 / len(x)) if w is None else w / w.sum()
    dx, dy = x - w @ x, y - w @ y
    den = np.sqrt((w @ dx**2) * (w @ dy**2))
    return float(w @ (dx * dy) / den) if den > 0 else float("nan")


def column_correlations(D_emb: np.ndarray, D_ref: np.ndarray, *, drop_self: bool = False) -> dict[str, np.ndarray]:
    """Per column: Spearman, Pearson and 1/y-weighted Pearson over the rows where both are defined."""
    from scipy.stats import rankdata

    out = {"rank": [], "corr": [], "corr_weighted": []}
    for c in range(D_emb.shape[1]):
        ok = np.isfinite(D_emb[:, c]) & np.isfinite(D_ref[:, c])
        if drop_self:
            ok[c] = False
        x, y = D_emb[ok, c], D_ref[ok, c]
        if len(x) < 2:
            for v in out.values():
                v.append(np.nan)
            continue
        out["rank"].append(weighted_pearson(rankdata(x), rankdata(y)))
        out["corr"].append(weighted_pearson(x, y))
        with np.errstate(divide="ignore"):
            w = np.where(y == 0, 0.0, 1.0 / y)
        out["corr_weighted"].append(weighted_pearson(x, y, w) if w.sum() > 0 else np.nan)
    return {k: np.array(v) for k, v in out.items()}


def nanmean_or_fail(values: np.ndarray, what: str) -> float:
    if not np.isfinite(values).any():
        raise CellFailed(f"{what}: every per-type correlation is undefined (constant distances).")
    return float(np.nanmean(values))
