"""MetricSpec, the registration decorator, and the per-embedding inputs shared by all metrics."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from scfm_bench.registry import METRICS

Input = Literal["X", "labels", "batch", "X_pre", "knn15", "knn50", "knn90", "ontology_ids", "expression", "predictions",
                "folds", "perturbation", "continuous", "go_labels", "go_scores"]
# inputs a task may not provide: a metric needing a missing one is skipped with the reason
OPTIONAL_INPUTS = ("labels", "batch", "X_pre", "ontology_ids", "expression", "predictions", "folds", "perturbation",
                   "continuous", "go_labels", "go_scores")


@dataclass(frozen=True)
class PerturbationEval:
    """Pseudobulk predictions of held-out perturbations and what they are scored against (one row per
    test perturbation p). Gene masks already exclude p's own targets unless the task keeps them."""

    pred: np.ndarray  # (n_test, n_genes) predicted log-expression x̂_p
    truth: np.ndarray  # (n_test, n_genes) observed pseudobulk x_p
    control: np.ndarray  # (n_genes,) control mean c
    reference: np.ndarray  # (n_genes,) perturbed reference r = mean of training perturbation centroids
    hvg: np.ndarray  # (n_test, n_genes) bool: H minus T(p)
    shared_hvg: np.ndarray  # (n_genes,) bool: H minus every test target (one gene set for all distances)
    top_expressed: np.ndarray  # (n_test, n_genes) bool: E1000 minus T(p)
    de: np.ndarray  # (n_test, n_de) int: DE20(p), largest |Welch t| vs control within H minus T(p)


@dataclass(frozen=True)
class MetricSpec:
    key: str
    label: str
    family: str
    higher_is_better: bool
    range: tuple[float, float]
    inputs: tuple[Input, ...]
    citation: str
    outputs: tuple[str, ...] | None = None  # for functions returning several values
    counts: tuple[str, ...] = ()  # outputs that are counts: reported as counts, never scaled or aggregated
    min_batches: int = 1
    min_cells_per_label: int = 1
    optional: tuple[Input, ...] = ()  # inputs the function accepts as None
    # the function returns {name: value} with names that depend on the data (e.g. one per declared
    # property); each becomes an outcome "<suite id>:<name>"
    dynamic_outputs: bool = False
    # suite-time check of option values (e.g. that a file an option names is usable), so bad input stops
    # a run before anything is written; raises ScfmBenchError
    check_options: Callable[[dict[str, Any]], None] | None = None
    # cost grows with n²: above metrics/_subsample.QUADRATIC_MAX_CELLS cells it runs on a declared,
    # stratified, seeded subsample (evaluate_suite; the record's params say so)
    quadratic: bool = False

    def check_entry(self, entry) -> None:
        """Validate a suite entry (metrics/*.yaml) against this spec; raises ValueError or ScfmBenchError."""
        if self.outputs is not None and entry.output not in self.outputs:
            raise ValueError(f"{self.key!r} returns {list(self.outputs)}: set output to one of them")
        if self.dynamic_outputs and entry.output is not None:
            raise ValueError(f"{self.key!r} returns one value per data-dependent name; remove output: {entry.output!r}")
        if self.outputs is None and entry.output is not None:
            raise ValueError(f"{self.key!r} returns one value; remove output: {entry.output!r}")
        if self.check_options is not None:
            self.check_options(entry.kwargs)


@dataclass(frozen=True)
class Metric:
    spec: MetricSpec
    fn: Callable[..., float | dict[str, float]]

    def options(self) -> dict[str, Any]:
        """Keyword-only options with their paper defaults."""
        sig = inspect.signature(self.fn)
        return {n: p.default for n, p in sig.parameters.items() if p.kind is p.KEYWORD_ONLY}

    def __call__(self, inputs: "MetricInputs", **kwargs: Any) -> float | dict[str, float]:
        unknown = set(kwargs) - set(self.options())
        if unknown:
            raise TypeError(f"metric {self.spec.key!r} has no option(s) {sorted(unknown)}; options: {sorted(self.options())}")
        return self.fn(*(getattr(inputs, name) for name in self.spec.inputs), **kwargs)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: a Slurm allocation, taskset), which bounds
    the threads of the metric kernels."""
    return len(os.sched_getaffinity(0))


def metric(spec: MetricSpec) -> Callable[[Callable], Metric]:
    def deco(fn: Callable) -> Metric:
        m = Metric(spec, fn)
        METRICS.add(spec.key, m, origin=fn.__module__)
        return m

    return deco


@dataclass(frozen=True)
class Units:
    """Per-unit values (cells, labels, batches, perturbations) whose mean IS the metric value: what a
    paired bootstrap between models resamples. ``ids`` name the units the same way for every model."""

    kind: Literal["cell", "label", "batch", "perturbation"]
    ids: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class Scored:
    """A metric's value(s) plus facts to record with them (ontology version, subsample size, ...) and,
    where the value is a mean over units, those units (keyed by output name; "" for a single value)."""

    values: float | dict[str, float]
    info: dict[str, Any] = field(default_factory=dict)
    units: dict[str, Units] = field(default_factory=dict)


@dataclass
class MetricInputs:
    """Everything a metric may ask for about one embedding. kNN graphs come from ``neighbors``, the
    embedding's shared NeighborGraph (built here when the caller passes none): one 90-NN search,
    subset to 15/50 (the scib-metrics Benchmarker convention)."""

    X: np.ndarray
    labels: np.ndarray | None = None
    batch: np.ndarray | None = None
    X_pre: np.ndarray | None = None
    perturbation: PerturbationEval | None = None
    ontology_ids: np.ndarray | None = None  # Cell Ontology id (or name) per cell
    expression: Any = None  # log-normalised expression, cells x genes (dense or sparse)
    predictions: np.ndarray | None = None  # predicted labels (same vocabulary as labels / ontology_ids)
    folds: np.ndarray | None = None  # evaluation fold per cell; metrics on predictions average over folds
    continuous: dict[str, np.ndarray] | None = None  # per-cell numeric properties the dataset declares, by name
    # gene_function task: X holds gene embeddings (one row per gene), go_labels the genes x GO terms
    # membership (bool) and go_scores a probe's out-of-fold term scores in [0, 1], same shape
    go_labels: np.ndarray | None = None
    go_scores: np.ndarray | None = None
    knn_method: str = "auto"
    seed: int = 0  # the run seed: draws the quadratic metrics' subsample above the threshold
    exact_quadratic: bool = False  # True: quadratic metrics on every cell, whatever the size
    neighbors: Any = None  # NeighborGraph of X, shared by every task on this embedding
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        from scfm_bench.metrics._neighbors import NeighborGraph

        if self.neighbors is None:
            self.neighbors = NeighborGraph(self.X)
        elif self.neighbors.X is not self.X:
            raise ValueError("MetricInputs: the NeighborGraph passed was built on a different embedding")

    @property
    def knn90(self):
        return self.neighbors.get(90, self.knn_method)

    @property
    def knn50(self):
        return self.neighbors.get(50, self.knn_method)

    @property
    def knn15(self):
        return self.neighbors.get(15, self.knn_method)
