"""Declared, stratified, seeded subsampling for the metrics whose cost grows with n² (MetricSpec
``quadratic=True``: silhouette label, isolated labels, silhouette batch, BRAS, kBET).

Above ``QUADRATIC_MAX_CELLS`` cells such a metric is computed on a subsample of that many cells,
stratified by label × batch (each stratum keeps its share, at least 2 cells or all it has, so every
label stays in every batch it was in and isolated labels stay isolated), drawn from the run seed. Its
inputs are the embedding, labels, batches and pre-integration embedding restricted to those cells;
a metric that reads a kNN graph (kBET) gets the graph of the subsample (one search, shared by every
subsampled metric on the embedding). The record's params carry
``sampling: {method: stratified, strata: label×batch, n, of, seed}``; at or below the threshold,
or with the task parameter ``exact_quadratic: true``, nothing changes (values as before).

Why 100,000: the silhouette family costs ~n²·d flops per metric and the suites run five such
metrics per embedding; at 100k cells that is about a minute each on 2 cores, at 1M cells (100× the
work) hours; and up to 100k (the 60k-cell comparison with scib-metrics included) values stay exact.
The deviation from the exact value is a sampling error of a mean of ~100k per-cell values (standard
error ≈ sd/√100,000 ≈ 6e-4 for a per-cell sd of 0.2); tests/metrics/test_subsample.py bounds a
looser 50,000-of-100,000 draw.
"""

from __future__ import annotations

import dataclasses

import numpy as np

QUADRATIC_MAX_CELLS = 100_000
_MIN_PER_STRATUM = 2  # a silhouette needs 2 cells of a cluster; BRAS reads each batch within a label


def stratified_subsample(strata: np.ndarray, cap: int, seed: int, min_per_stratum: int = 1) -> np.ndarray:
    """Sorted indices of about ``cap`` cells, each stratum keeping its share (floor) and at least
    ``min_per_stratum`` cells (or all it has)."""
    if len(strata) <= cap:
        return np.arange(len(strata))
    rng = np.random.default_rng(seed)
    _, inverse, counts = np.unique(strata, return_inverse=True, return_counts=True)
    take = np.maximum(np.minimum(counts, min_per_stratum), np.floor(counts * cap / len(strata)).astype(int))
    picked = [rng.choice(np.flatnonzero(inverse == i), size=k, replace=False) for i, k in enumerate(take)]
    return np.sort(np.concatenate(picked))


def quadratic_inputs(inputs):
    """(inputs for a quadratic metric, the ``sampling`` record entry or None): ``inputs`` itself at or
    below the threshold or when exact is asked for; else the stratified subsample, built once per
    MetricInputs and reused by every quadratic metric on it."""
    if inputs.X is None or inputs.exact_quadratic or inputs.X.shape[0] <= QUADRATIC_MAX_CELLS:
        return inputs, None  # (no X: a model's own graph, e.g. BBKNN's, which cannot be re-searched on a subsample)
    n = inputs.X.shape[0]
    cached = inputs._cache.get("quadratic_subsample")
    if cached is None:
        labels = np.zeros(n, dtype=str) if inputs.labels is None else np.asarray(inputs.labels).astype(str)
        batch = np.zeros(n, dtype=str) if inputs.batch is None else np.asarray(inputs.batch).astype(str)
        strata = np.char.add(np.char.add(labels, "\x1f"), batch)
        idx = stratified_subsample(strata, QUADRATIC_MAX_CELLS, inputs.seed, _MIN_PER_STRATUM)
        sub = {name: (None if getattr(inputs, name) is None else np.asarray(getattr(inputs, name))[idx])
               for name in ("X", "labels", "batch", "X_pre")}
        # a fresh MetricInputs (hence its own NeighborGraph of the subsample); no other per-cell input is
        # carried over, so a metric reading one would see it missing instead of misaligned
        sub_inputs = type(inputs)(**sub, knn_method=inputs.knn_method, seed=inputs.seed, exact_quadratic=True)
        sub_inputs._cache["parent_cells"] = idx
        sampling = {"method": "stratified", "strata": "label×batch", "n": int(len(idx)), "of": int(n),
                    "seed": int(inputs.seed)}
        cached = inputs._cache["quadratic_subsample"] = (sub_inputs, sampling)
    return cached


def parent_units(units, sub_inputs):
    """Per-cell units of a subsampled metric, named by the cells' indices in the full dataset (the same
    cells for every model: the draw depends on labels, batches and seed only)."""
    if units.kind != "cell":
        return units
    return dataclasses.replace(units, ids=sub_inputs._cache["parent_cells"][np.asarray(units.ids)])
