"""Metrics: one file per metric (or tightly-coupled family); each registers itself in METRICS."""

from scfm_bench.metrics._base import Metric, MetricInputs, MetricSpec, PerturbationEval, Scored, Units, metric
from scfm_bench.metrics._evaluate import Outcome, compute_aggregates, evaluate_suite
from scfm_bench.metrics._neighbors import NeighborGraph

__all__ = ["Metric", "MetricInputs", "MetricSpec", "NeighborGraph", "Outcome", "PerturbationEval", "Scored", "Units",
           "compute_aggregates", "evaluate_suite", "metric"]
