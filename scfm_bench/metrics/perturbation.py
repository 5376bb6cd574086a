"""Perturbation-response metrics (spec perturbation.md §1.6), a tight family over ``PerturbationEval``.

Each returns one value per test perturbation (the task averages them, bootstraps paired differences
and writes the per-perturbation table). Pearson of a (numerically) constant vector is 0, not NaN.
The headline metrics are reference-corrected (PearsonΔ against the perturbed reference r, centroid
accuracy, L2 on the top-expressed genes); the control-referenced legacy ones (PearsonΔ vs control,
MSE and direction accuracy on the top-20 DE genes) are inflated by a shift shared by all perturbed
cells and are reported for comparability only.
"""

from __future__ import annotations

import numpy as np

from scfm_bench.metrics._base import MetricSpec, PerturbationEval, metric

_SYSTEMA = "Viñas Torné et al. 2025, Nat Biotechnol (Systema)"
_GEARS = "Roohani et al. 2024, Nat Biotechnol (GEARS)"
_TOL = 1e-10  # below this spread a vector is constant: `mean - r` is float noise, not a signal


def rowwise_pearson(u: np.ndarray, v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Pearson of u[i] and v[i] over mask[i]; 0 where either side has (numerically) zero variance."""
    mask = mask.astype(float)
    n = mask.sum(axis=1)
    mu_u = (u * mask).sum(1) / n
    mu_v = (v * mask).sum(1) / n
    du = (u - mu_u[:, None]) * mask
    dv = (v - mu_v[:, None]) * mask
    su, sv = np.sqrt((du**2).sum(1)), np.sqrt((dv**2).sum(1))
    ok = (su > _TOL * np.sqrt(n)) & (sv > _TOL * np.sqrt(n))
    return np.where(ok, (du * dv).sum(1) / np.where(ok, su * sv, 1.0), 0.0)


def _de_mask(pe: PerturbationEval) -> np.ndarray:
    mask = np.zeros(pe.pred.shape, dtype=bool)
    np.put_along_axis(mask, pe.de, True, axis=1)
    return mask


def _genes(pe: PerturbationEval, genes: str) -> np.ndarray:
    if genes not in ("hvg", "de"):
        raise ValueError(f"genes must be 'hvg' or 'de', not {genes!r}")
    return pe.hvg if genes == "hvg" else _de_mask(pe)


_PEARSON = dict(family="perturbation", higher_is_better=True, range=(-1.0, 1.0), inputs=("perturbation",))


@metric(MetricSpec(key="pearson_delta_pert", label="PearsonΔ vs perturbed reference", citation=_SYSTEMA, **_PEARSON))
def pearson_delta_pert(pe: PerturbationEval, *, genes: str = "hvg") -> np.ndarray:
    """ρ((x̂_p − r), (x_p − r)) over H \\ T(p) (``genes="hvg"``) or DE20(p) (``"de"``). `mean` scores 0."""
    return rowwise_pearson(pe.pred - pe.reference, pe.truth - pe.reference, _genes(pe, genes))


@metric(MetricSpec(key="pearson_delta_ctrl", label="PearsonΔ vs control (legacy, inflatable)", citation=_GEARS, **_PEARSON))
def pearson_delta_ctrl(pe: PerturbationEval, *, genes: str = "hvg") -> np.ndarray:
    """GEARS/scGPT ``pearson_delta``: ρ((x̂_p − c), (x_p − c)); rewards predicting a shared shift."""
    return rowwise_pearson(pe.pred - pe.control, pe.truth - pe.control, _genes(pe, genes))


@metric(MetricSpec(key="centroid_accuracy", label="Centroid accuracy", family="perturbation", higher_is_better=True,
                   range=(0.0, 1.0), inputs=("perturbation",), citation=_SYSTEMA))
def centroid_accuracy(pe: PerturbationEval) -> np.ndarray:
    """Share of other test perturbations q whose centroid is farther from x̂_p than x_p is (on one
    shared gene set, so each unordered pair gives one win to an agnostic predictor: mean 0.5)."""
    g = pe.shared_hvg
    pred, truth = pe.pred[:, g], pe.truth[:, g]
    d = np.sqrt(((pred[:, None, :] - truth[None, :, :]) ** 2).sum(-1))  # d[p, q] = ‖x̂_p − x_q‖
    own = np.diag(d)
    n = len(own)
    if n < 2:
        raise ValueError("centroid accuracy needs at least 2 test perturbations")
    wins = (d > own[:, None]).sum(1)  # the diagonal never counts: d[p, p] > d[p, p] is false
    return wins / (n - 1)


@metric(MetricSpec(key="l2_top_expressed", label="L2 error on top-1000 expressed genes", family="perturbation",
                   higher_is_better=False, range=(0.0, float("inf")), inputs=("perturbation",),
                   citation="Ahlmann-Eltze et al. 2025, Nat Methods"))
def l2_top_expressed(pe: PerturbationEval) -> np.ndarray:
    """‖(x̂_p − x_p)[E1000 \\ T(p)]‖₂ (the task also reports its ratio to the `mean` baseline)."""
    return np.sqrt((((pe.pred - pe.truth) ** 2) * pe.top_expressed).sum(1))


@metric(MetricSpec(key="mse_de", label="MSE on top-20 DE genes (legacy)", family="perturbation", higher_is_better=False,
                   range=(0.0, float("inf")), inputs=("perturbation",), citation=_GEARS))
def mse_de(pe: PerturbationEval) -> np.ndarray:
    err = np.take_along_axis(pe.pred - pe.truth, pe.de, axis=1)
    return (err**2).mean(1)


@metric(MetricSpec(key="direction_accuracy_de", label="Direction accuracy on top-20 DE genes (legacy)",
                   family="perturbation", higher_is_better=True, range=(0.0, 1.0), inputs=("perturbation",),
                   citation=_GEARS))
def direction_accuracy_de(pe: PerturbationEval) -> np.ndarray:
    """GEARS ``frac_correct_direction_top20``: sign(x̂_p − c) = sign(x_p − c) on DE20(p)."""
    pred = np.take_along_axis(np.sign(pe.pred - pe.control), pe.de, axis=1)
    truth = np.take_along_axis(np.sign(pe.truth - pe.control), pe.de, axis=1)
    return (pred == truth).mean(1)
