"""Paired statistics of per-perturbation differences: bootstrap CI of the mean and Wilcoxon p."""

from __future__ import annotations

import numpy as np

from scfm_bench.bootstrap import paired_mean_diff


def paired_stats(a: np.ndarray, b: np.ndarray, *, n_boot: int = 10_000, seed: int = 0) -> dict:
    """Mean difference a - b over paired perturbations, its 95 % percentile-bootstrap CI (the project's
    one bootstrap, resampling perturbations) and the Wilcoxon signed-rank p-value (None when every
    difference is 0: the two predictors agree everywhere)."""
    from scipy.stats import wilcoxon

    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    est, lo, hi = paired_mean_diff(a, b, n_boot=n_boot, seed=seed)
    p = float(wilcoxon(diff).pvalue) if np.any(diff != 0) else None
    return {"mean_diff": est, "ci95": None if np.isnan(lo) else [lo, hi], "p_wilcoxon": p, "n_boot": n_boot}
