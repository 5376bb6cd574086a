"""Evaluate a metric suite on one embedding, and derive its declared aggregates.

Each distinct (metric, kwargs) runs once even when several suite entries read different outputs of
it (e.g. KMeans NMI and ARI). A metric whose spec is ``quadratic`` runs on the declared stratified
subsample above metrics/_subsample.QUADRATIC_MAX_CELLS cells (``sampling`` in its params). A metric
that cannot apply (one batch, too-small labels) is skipped with the reason; one that raises or
returns a non-finite value is failed with the reason.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scfm_bench.config.schemas import MetricEntry, MetricSuite
from scfm_bench.exceptions import CellSkipped
from scfm_bench.metrics._base import OPTIONAL_INPUTS, Metric, MetricInputs, Scored, Units
from scfm_bench.metrics._neighbors import resolve_method
from scfm_bench.metrics._subsample import parent_units, quadratic_inputs
from scfm_bench.registry import METRICS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """One metric value (or why there is none) before the runner stamps it into a MetricResult."""

    id: str
    family: str
    higher_is_better: bool
    value: float | None = None
    status: str = "ok"
    reason: str | None = None
    metric_s: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    units: Units | None = None  # per-unit values averaging to ``value`` (written beside the records)


# dataset columns a metric may need, and the flag (or datasets.yaml field) that declares each
_PROVIDED_BY = {"labels": "--label-key (fields.label)", "batch": "--batch-key (fields.batch)",
                "ontology_ids": "--ontology-key (fields.ontology_id)"}


def _precondition(m: Metric, inputs: MetricInputs) -> str | None:
    spec = m.spec
    if inputs.X is None and "X" in spec.inputs:
        return "not applicable: the model yields a kNN graph, not an embedding (an embedding-only metric, as in scIB)"
    for name in spec.inputs:
        if name in OPTIONAL_INPUTS and name not in spec.optional and getattr(inputs, name) is None:
            how = _PROVIDED_BY.get(name)
            return (f"needs {name}, which this dataset does not declare; give {how}" if how
                    else f"needs {name}, which this dataset/task does not provide")
    if spec.min_batches > 1:
        n = len(np.unique(inputs.batch))
        if n < spec.min_batches:
            return f"needs at least {spec.min_batches} batches; the dataset has {n}"
    if spec.min_cells_per_label > 1 and inputs.labels is not None:
        values, counts = np.unique(inputs.labels, return_counts=True)
        small = [f"'{v}' ({c})" for v, c in zip(values, counts) if c < spec.min_cells_per_label]
        if small:
            return (f"needs at least {spec.min_cells_per_label} cells per label; too small: {', '.join(small[:5])}. "
                    "Drop or merge these labels")
    return None


def evaluate_suite(suite: MetricSuite, inputs: MetricInputs) -> list[Outcome]:
    groups: dict[tuple[str, str], list[MetricEntry]] = {}
    for entry in suite.metrics:
        groups.setdefault((entry.metric, json.dumps(entry.kwargs, sort_keys=True)), []).append(entry)
    outcomes: list[Outcome] = []
    for (key, _), entries in groups.items():
        m: Metric = METRICS.get(key)
        kwargs = entries[0].kwargs
        params = {"metric": key, **kwargs}
        reason = _precondition(m, inputs)
        if reason is not None:
            outcomes += [Outcome(e.id, e.family, m.spec.higher_is_better, status="skipped", reason=f"{e.id}: {reason}",
                                 params=params) for e in entries]
            continue
        t0 = time.perf_counter()
        try:
            m_inputs, sampling = quadratic_inputs(inputs) if m.spec.quadratic else (inputs, None)
            if sampling is not None:
                params = {**params, "sampling": sampling}
            if any(name.startswith("knn") for name in m.spec.inputs):  # which search built the graph
                method = "model graph" if m_inputs.X is None else resolve_method(m_inputs.X.shape[0], m_inputs.knn_method)
                params = {**params, "knn": {"method": method}}
            result = m(m_inputs, **kwargs)
        except CellSkipped as exc:  # the data do not allow this metric (e.g. < 3 cell types with enough cells)
            outcomes += [Outcome(e.id, e.family, m.spec.higher_is_better, status="skipped", reason=f"{e.id}: {exc}",
                                 params=params) for e in entries]
            continue
        except Exception as exc:  # one metric's crash must not lose the others; the record keeps the reason
            log.warning("metric %s failed: %s", key, exc, exc_info=log.isEnabledFor(logging.DEBUG))
            outcomes += [Outcome(e.id, e.family, m.spec.higher_is_better, status="failed",
                                 reason=f"{e.id}: {type(exc).__name__}: {exc}", params=params) for e in entries]
            continue
        elapsed = time.perf_counter() - t0
        units: dict[str, Units] = {}
        if isinstance(result, Scored):
            params, units = {**params, **result.info}, result.units
            if sampling is not None:
                units = {k: parent_units(u, m_inputs) for k, u in units.items()}
            result = result.values
        for e in entries:
            if m.spec.dynamic_outputs:
                values = {f"{e.id}:{name}": v for name, v in result.items()}
            else:
                values = {e.id: result[e.output] if e.output is not None else result}
            for oid, value in values.items():
                if value is None or not math.isfinite(value):
                    outcomes.append(Outcome(oid, e.family, m.spec.higher_is_better, status="failed",
                                            reason=f"{oid}: metric returned {value}", metric_s=elapsed, params=params))
                else:
                    outcomes.append(Outcome(oid, e.family, m.spec.higher_is_better, float(value), metric_s=elapsed,
                                            params={**params, "count": True} if e.output in m.spec.counts else params,
                                            units=units.get(e.output or "")))
    return outcomes


def compute_aggregates(suite: MetricSuite, outcomes: list[Outcome]) -> list[Outcome]:
    """Aggregates over raw (unscaled) values; missing components make the aggregate skipped/failed."""
    by_id = {o.id: o for o in outcomes}
    # counts (e.g. the number of errors) are not scores: never averaged into a family aggregate
    family_of = {m.id: m.family for m in suite.metrics if m.output not in METRICS.get(m.metric).spec.counts}
    out: list[Outcome] = []
    for agg in suite.aggregates:
        if agg.weights is not None:
            weights = agg.weights
        else:
            ids = agg.of if agg.of is not None else [i for i, f in family_of.items() if f == agg.family]
            weights = {i: 1.0 / len(ids) for i in ids}
        parts = [by_id[i] for i in weights]
        params = {"weights": weights, "min_max_scaled": False}
        not_ok = [p for p in parts if p.status != "ok"]
        if not_ok:
            status = "failed" if any(p.status == "failed" for p in not_ok) else "skipped"
            res = Outcome(agg.id, "aggregate", True, status=status,
                          reason=f"{agg.id}: components not available: {', '.join(p.id for p in not_ok)}", params=params)
        else:
            res = Outcome(agg.id, "aggregate", True, sum(w * by_id[i].value for i, w in weights.items()), params=params)
        by_id[agg.id] = res
        out.append(res)
    return out
