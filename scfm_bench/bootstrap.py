"""The project's one bootstrap: seeded percentile intervals from ``scipy.stats.bootstrap``.

Reports (intervals of a mean over seeds, paired model-vs-baseline differences over cells, labels or
perturbations) and the perturbation task (paired differences over perturbations) all call it. Fewer
than ``MIN_UNITS`` units give no interval (NaN), never a fake one.

Samples of one size share one set of resamples (seeded by ``(seed, n)``, common random numbers): a
result depends only on the values and the seed, never on table order, and thousands of samples of
the same size bootstrap in one vectorised call.
"""

from __future__ import annotations

import numpy as np

N_BOOT = 2000
MIN_UNITS = 3  # fewer units cannot support an interval; "?" is reported instead
LEVEL = 0.95
_BATCH = 64  # resamples per vectorised step: bounds memory to batch x samples x n values


def _mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)


def _mean_diff(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def _interval(data: tuple[np.ndarray, ...], statistic, *, n_boot: int, seed: int, level: float,
              paired: bool = False) -> np.ndarray:
    """(k, 2) percentile intervals of ``statistic`` over the last axis of (k, n) arrays."""
    from scipy.stats import bootstrap

    n = data[0].shape[-1]
    res = bootstrap(data, statistic, n_resamples=n_boot, confidence_level=level, method="percentile", paired=paired,
                    vectorized=True, axis=-1, batch=_BATCH, rng=np.random.default_rng([seed, n]))
    return np.stack([res.confidence_interval.low, res.confidence_interval.high], axis=-1)


def mean_ci(samples: list[np.ndarray], *, n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL) -> np.ndarray:
    """(len(samples), 2) percentile intervals of each sample's mean; NaN rows under MIN_UNITS units."""
    out = np.full((len(samples), 2), np.nan)
    by_n: dict[int, list[int]] = {}
    for i, s in enumerate(samples):
        if len(s) >= MIN_UNITS:
            by_n.setdefault(len(s), []).append(i)
    for idx in by_n.values():
        stacked = np.stack([np.asarray(samples[i], float) for i in idx])
        ci = np.full((len(idx), 2), np.nan)
        varies = np.ptp(stacked, axis=1) > 0  # a constant sample has the degenerate interval [v, v]
        ci[~varies] = stacked[~varies, :1]
        if varies.any():
            ci[varies] = _interval((stacked[varies],), _mean, n_boot=n_boot, seed=seed, level=level)
        out[idx] = ci
    return out


def paired_mean_diff(a: np.ndarray, b: np.ndarray, *, n_boot: int = N_BOOT, seed: int = 0,
                     level: float = LEVEL) -> tuple[float, float, float]:
    """mean(a) - mean(b) over paired units (a[i] and b[i] measure the same unit) and its percentile
    interval, resampling units with ``paired=True``; (estimate, NaN, NaN) under MIN_UNITS units."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    est = float(a.mean() - b.mean()) if len(a) else float("nan")
    if len(a) < MIN_UNITS:
        return est, float("nan"), float("nan")
    if np.ptp(a - b) == 0:  # identical differences everywhere: every resample gives the estimate
        return est, est, est
    lo, hi = _interval((a[None], b[None]), _mean_diff, n_boot=n_boot, seed=seed, level=level, paired=True)[0]
    return est, float(lo), float(hi)
