"""Seeded percentile bootstrap of means, vectorised over many samples of the same size.

All samples of size n share one set of resamples (common random numbers), drawn from a generator
seeded by (seed, n): results depend only on the values and the seed, never on table order, and
100k records bootstrap in one matrix product per sample size.
"""

from __future__ import annotations

import numpy as np

N_BOOT = 2000
MIN_UNITS = 3  # fewer paired units cannot support a significance claim; no interval is reported


def _counts(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) multinomial resample counts: how often each unit appears in each resample."""
    rng = np.random.default_rng([seed, n])
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)


def bootstrap_mean_ci(samples: list[np.ndarray], *, n_boot: int = N_BOOT, seed: int = 0,
                      level: float = 0.95) -> np.ndarray:
    """(len(samples), 2) percentile intervals of the mean; NaN rows for samples under MIN_UNITS."""
    out = np.full((len(samples), 2), np.nan)
    by_n: dict[int, list[int]] = {}
    for i, s in enumerate(samples):
        if len(s) >= MIN_UNITS:
            by_n.setdefault(len(s), []).append(i)
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    for n, idx in by_n.items():
        weights = _counts(n, n_boot, seed).T / n  # (n, n_boot)
        for start in range(0, len(idx), 4096):  # bounded memory: 4096 x n_boot means at a time
            chunk = idx[start:start + 4096]
            means = np.stack([samples[i] for i in chunk]) @ weights
            out[chunk] = np.percentile(means, q, axis=1).T
    return out
