"""Paired statistics of per-perturbation differences: bootstrap CI of the mean and Wilcoxon p."""

from __future__ import annotations

import numpy as np


def paired_stats(diff: np.ndarray, *, n_boot: int = 10_000, seed: int = 0) -> dict:
    """Mean difference, its 95 % percentile-bootstrap CI (resampling perturbations) and the Wilcoxon
    signed-rank p-value (None when every difference is 0: the two predictors agree everywhere)."""
    from scipy.stats import wilcoxon

    diff = np.asarray(diff, dtype=float)
    rng = np.random.default_rng([seed, 4])
    boot = diff[rng.integers(0, len(diff), (n_boot, len(diff)))].mean(1)
    lo, hi = np.quantile(boot, [0.025, 0.975])
    p = float(wilcoxon(diff).pvalue) if np.any(diff != 0) else None
    return {"mean_diff": float(diff.mean()), "ci95": [float(lo), float(hi)], "p_wilcoxon": p, "n_boot": n_boot}
