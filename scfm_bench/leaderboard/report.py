"""The full report: a Leaderboard plus what a reader needs to trust it. Pure: records and manifests in.

On top of the per-(task, dataset) tables it adds, for every (task, dataset, model, column):

- **min-max-scaled** scores: 0 = worst and 1 = best model on that dataset (direction-aware);
- **control-scaled** scores: 0 = the mean of the negative controls present (models of kind
  ``control``: ``random``, ``shuffled``, the random-embedding probes) and 1 = the mean of the ceilings
  (kind ``ceiling``: ``label_onehot``, ``noise_ceiling``); NaN unless both kinds ran;
- **95 % bootstrap intervals** of the mean over seeds (percentile bootstrap, seeded; only with at
  least ``MIN_UNITS`` seeds);

and, per model, a **paired comparison with the best baseline** on the ranking column and on every
column with stored per-unit values: the direction-signed difference of the means and the 95 %
percentile interval of that same statistic, bootstrapping units paired between the two models
(``scipy.stats.bootstrap(paired=True)``, via scfm_bench.bootstrap). The unit is the metric's own
(cells, labels, perturbations: the values the runner writes beside the records, whose mean is the
metric), else the seeds when both models ran at least MIN_UNITS of them; otherwise there is no
interval and the marker is "?" (a metric without units, e.g. an aggregate or NMI, on one seed).
"""

from __future__ import annotations

import math
import zlib
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from scfm_bench.bootstrap import N_BOOT, mean_ci, paired_mean_diff
from scfm_bench.leaderboard.build import CELL_METRIC, REFERENCE_KINDS, Leaderboard, Table, build_leaderboard, column_id
from scfm_bench.records import MetricResult, RunManifest, latest_per_key

SCORE_COLUMNS = ("task", "dataset", "model", "kind", "column", "family", "higher_is_better", "mean", "sd", "n",
                 "ci_low", "ci_high", "min_max", "control_scaled", "status", "reason", "rank", "model_status",
                 "in_pretraining")


@dataclass(frozen=True)
class Comparison:
    """One model against the best baseline of a (task, dataset) on ``column``.

    ``diff`` is the mean direction-signed difference (positive: the model is better); the interval
    is a 95 % percentile bootstrap of that statistic over ``n`` paired ``unit`` s (cells, labels,
    perturbations or seeds); NaN when there are fewer than MIN_UNITS.
    """

    task: str
    dataset: str
    model: str
    baseline: str
    column: str
    diff: float
    ci_low: float
    ci_high: float
    n: int
    unit: str

    @property
    def significant(self) -> bool:
        return bool(not math.isnan(self.ci_low) and (self.ci_low > 0 or self.ci_high < 0))

    @property
    def marker(self) -> str:
        """▲ significantly better, ▼ significantly worse, ≈ interval covers 0, ? too few paired units."""
        if math.isnan(self.ci_low):
            return "?"
        return "▲" if self.ci_low > 0 else "▼" if self.ci_high < 0 else "≈"


@dataclass(frozen=True)
class Provenance:
    package_versions: tuple[str, ...]
    git_commits: tuple[str, ...]
    run_ids: tuple[str, ...]
    suites: dict[str, int]  # metric-suite name -> version
    cl_versions: tuple[str, ...]
    manifests: int


@dataclass(frozen=True)
class Report:
    leaderboard: Leaderboard
    scores: pd.DataFrame  # SCORE_COLUMNS
    comparisons: tuple[Comparison, ...]
    overall: dict[str, pd.DataFrame]  # per task family: one row per model, ranking score per (task, dataset), mean rank
    kinds: dict[str, str]
    weights: dict[tuple[str, str], str]  # (task, dataset) -> how its aggregates are computed
    leakage: frozenset[tuple[str, str]]  # (model, dataset) pairs where pretraining saw the dataset
    warnings: tuple[str, ...]
    provenance: Provenance
    n_boot: int = field(default=N_BOOT)
    # unseen-only view: (model, dataset) pairs left out because the dataset is in the model's pretraining corpus
    excluded: frozenset[tuple[str, str]] = frozenset()

    @property
    def tables(self) -> dict[tuple[str, str], Table]:
        return self.leaderboard.tables


def build_report(records: list[MetricResult], manifests: list[RunManifest] = (), *, units: pd.DataFrame | None = None,
                 kinds: Mapping[str, str] | None = None, n_boot: int = N_BOOT, seed: int = 0,
                 unseen_only: bool = False) -> Report:
    """``units``: the per-unit tables beside the records (``read_units``), resampled by the paired comparisons.
    ``unseen_only``: rank each model only on datasets outside its pretraining corpus (datasets.yaml
    ``in_pretraining``); the pairs left out are listed in ``excluded`` and in a warning per dataset."""
    suites = _manifest_suites(manifests)
    leakage = frozenset((m, d) for d, entry in suites["datasets"].items() for m in entry.get("in_pretraining") or [])
    excluded = frozenset((r.model, r.dataset) for r in records if (r.model, r.dataset) in leakage) if unseen_only else frozenset()
    records = [r for r in records if (r.model, r.dataset) not in excluded]
    lb = build_leaderboard(records, kinds)
    latest = latest_per_key(sorted(records, key=lambda r: r.created_at))
    kinds = lb.kinds

    per_seed: dict[tuple[str, str, str, str], dict[int, float]] = defaultdict(dict)
    for r in latest:
        if r.status == "ok" and r.metric != CELL_METRIC:
            per_seed[(r.task, r.dataset, r.model, column_id(r.metric, r.submetric))][r.seed] = r.value

    scores = _scores(lb, per_seed, kinds, leakage, n_boot, seed)
    unit_index = _unit_index(latest, units)
    comparisons = tuple(c for t in lb.tables.values() for c in _compare(t, per_seed, unit_index, kinds, n_boot, seed))
    weights = {key: _weights_caption(suites["metric_suites"].get(key[0])) for key in lb.tables}
    return Report(
        leaderboard=lb, scores=scores, comparisons=comparisons, overall=_overall(lb, kinds), kinds=kinds,
        weights=weights, leakage=leakage, warnings=tuple(_hash_warnings(latest) + _excluded_warnings(excluded)),
        provenance=_provenance(latest, manifests, suites["versions"]), n_boot=n_boot, excluded=excluded,
    )


def _excluded_warnings(excluded: frozenset[tuple[str, str]]) -> list[str]:
    by_dataset: dict[str, list[str]] = defaultdict(list)
    for m, d in sorted(excluded):
        by_dataset[d].append(m)
    return [f"dataset {d!r}: unseen-only view: {', '.join(ms)} left out (this dataset is in their pretraining corpus, "
            "datasets.yaml in_pretraining)" for d, ms in by_dataset.items()]


def _manifest_suites(manifests: list[RunManifest]) -> dict[str, Any]:
    """Datasets and metric suites as the runs resolved them; later manifests win."""
    out: dict[str, Any] = {"datasets": {}, "metric_suites": {}, "versions": {}}
    for m in sorted(manifests, key=lambda m: m.created_at):
        out["datasets"].update(m.suite.get("datasets") or {})
        for task, suite in (m.suite.get("metric_suites") or {}).items():
            out["metric_suites"][task] = suite
            out["versions"][suite.get("name", task)] = suite.get("version")
    return out


def _weights_caption(suite: dict[str, Any] | None) -> str:
    if not suite:
        return "Aggregate weights not recorded (no run manifest next to the records)."
    parts = []
    for a in suite.get("aggregates") or []:
        if a.get("weights"):
            rhs = " + ".join(f"{w:g} × {k}" for k, w in a["weights"].items())
        elif a.get("of"):
            rhs = "mean(" + ", ".join(a["of"]) + ")"
        else:
            rhs = f"mean of the {a['family']} metrics"
        parts.append(f"{a['id']} = {rhs}")
    if not parts:
        return ""
    scaled = "min-max-scaled" if suite.get("min_max_scale") else "raw"
    return f"Aggregates ({suite.get('name', '?')} v{suite.get('version', '?')}, over {scaled} values): " + "; ".join(parts) + "."


def _hash_warnings(records: list[MetricResult]) -> list[str]:
    hashes: dict[str, set[str]] = defaultdict(set)
    for r in records:
        if r.dataset_sha256:
            hashes[r.dataset].add(r.dataset_sha256)
    return [
        f"dataset {d!r}: records come from {len(h)} different files (sha256 {', '.join(sorted(x[:12] for x in h))}); "
        "their scores are not comparable. Re-run all models on one version of the dataset."
        for d, h in sorted(hashes.items()) if len(h) > 1
    ]


def _provenance(records: list[MetricResult], manifests: list[RunManifest], versions: dict[str, Any]) -> Provenance:
    def uniq(values) -> tuple[str, ...]:
        return tuple(sorted({str(v) for v in values if v}))

    return Provenance(
        package_versions=uniq(m.package_version for m in manifests),
        git_commits=uniq(m.git_commit for m in manifests),
        run_ids=uniq([r.run_id for r in records] + [m.run_id for m in manifests]),
        suites=dict(sorted(versions.items())),
        cl_versions=uniq(r.params.get("ontology_version") for r in records),
        manifests=len(manifests),
    )


def _scale(table: Table, kinds: dict[str, str]) -> dict[tuple[str, str], tuple[float, float]]:
    """(model, column) -> (min-max-scaled, control-scaled) of the mean over seeds."""
    out = {}
    frame = table.frame.set_index("model")
    for col in table.columns:
        if col.is_count:  # a count is not a score: no scaled value
            continue
        means = frame[col.id].astype(float)
        finite = means.dropna()
        lo, hi = (finite.min(), finite.max()) if len(finite) else (math.nan, math.nan)
        neg_v, pos_v = (_mean_of(means, [m for m in means.index if kinds.get(m) == k]) for k in ("control", "ceiling"))
        for model, v in means.items():
            mm = math.nan if hi == lo or math.isnan(v) else ((v - lo) if col.higher_is_better else (hi - v)) / (hi - lo)
            # (v - neg) / (pos - neg) is direction-aware by itself: the positive control is the better end
            cs = math.nan if math.isnan(neg_v) or math.isnan(pos_v) or pos_v == neg_v else (v - neg_v) / (pos_v - neg_v)
            out[(model, col.id)] = (mm, cs)
    return out


def _mean_of(means: pd.Series, models: list[str]) -> float:
    values = means[models].dropna()
    return float(values.mean()) if len(values) else math.nan


def _key_seed(seed: int, *key: str) -> int:
    return seed ^ zlib.crc32("\x1f".join(key).encode())


def _scores(lb: Leaderboard, per_seed, kinds, leakage, n_boot: int, seed: int) -> pd.DataFrame:
    long = lb.long[lb.long["column"] != CELL_METRIC].reset_index(drop=True)
    samples = [np.fromiter(per_seed.get((r.task, r.dataset, r.model, r.column), {}).values(), float)
               for r in long.itertuples(index=False)]
    ci = mean_ci(samples, n_boot=n_boot, seed=seed) if len(long) else np.empty((0, 2))
    scaled = {}
    for (task, dataset), t in lb.tables.items():
        scaled |= {(task, dataset, *k): v for k, v in _scale(t, kinds).items()}
    keys = list(zip(long["task"], long["dataset"], long["model"], long["column"]))
    out = long.assign(
        kind=long["model"].map(kinds),
        ci_low=ci[:, 0], ci_high=ci[:, 1],
        min_max=[scaled.get(k, (math.nan, math.nan))[0] for k in keys],
        control_scaled=[scaled.get(k, (math.nan, math.nan))[1] for k in keys],
        in_pretraining=[(m, d) in leakage for m, d in zip(long["model"], long["dataset"])],
    )
    return out[list(SCORE_COLUMNS)]


def best_baseline(table: Table, kinds: dict[str, str]) -> str | None:
    """The baseline ranked best on this table (None when no baseline has a rank)."""
    ranked = table.frame[table.frame["model"].map(kinds).eq("baseline") & table.frame["rank"].notna()]
    return None if ranked.empty else str(ranked.iloc[0]["model"])


def _unit_index(latest: list[MetricResult], units: pd.DataFrame | None) -> dict[tuple, tuple[str, pd.Series]]:
    """(task, dataset, model, seed, column) -> (unit kind, values by unit id), only from the run that
    wrote the record the report shows (an older run's units never pair with a newer value)."""
    if units is None or units.empty:
        return {}
    run_of = {(r.task, r.dataset, r.model, r.seed, r.metric): r.run_id for r in latest
              if r.status == "ok" and r.submetric is None}
    out = {}
    for (task, dataset, model, seed, metric, run_id), g in units.groupby(
            ["task", "dataset", "model", "seed", "metric", "run_id"], sort=False):
        key = (task, dataset, model, int(seed), metric)
        if run_of.get(key) == run_id:
            out[key] = (str(g["unit"].iloc[0]), pd.Series(g["value"].to_numpy(float), index=g["id"].to_numpy()))
    return out


def _compare(table: Table, per_seed, unit_index, kinds, n_boot: int, seed: int) -> list[Comparison]:
    """Each model against the best baseline: on the ranking column, and on every column whose
    per-unit values the baseline stored."""
    base = best_baseline(table, kinds)
    if base is None:
        return []
    key = (table.task, table.dataset)
    cols = [c for c in table.columns if c.id == table.ranked_by]
    cols += [c for c in table.columns if c not in cols and any(k[:3] == (*key, base) and k[4] == c.id for k in unit_index)]
    out = []
    for model in table.frame["model"]:
        if model == base or kinds.get(model) in REFERENCE_KINDS:
            continue
        for col in cols:
            c = _paired(key, col, model, base, per_seed, unit_index, n_boot, _key_seed(seed, *key, model, col.id))
            if c is not None:
                out.append(c)
    return out


def _paired(key, col, model: str, base: str, per_seed, unit_index, n_boot: int, seed: int) -> Comparison | None:
    """Direction-signed mean difference and its paired percentile-bootstrap interval. Resampled: the
    metric's own units (cells, labels, perturbations; averaged over the seeds both ran), else the seeds
    when both ran >= MIN_UNITS, else nothing (no interval: "?")."""
    sign = 1.0 if col.higher_is_better else -1.0
    a, b = per_seed.get((*key, model, col.id), {}), per_seed.get((*key, base, col.id), {})
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    ua, ub = ([unit_index.get((*key, m, s, col.id)) for s in seeds] for m in (model, base))
    if all(u is not None for u in ua + ub):
        both = pd.concat([pd.concat([u[1] for u in us], axis=1, join="inner").mean(axis=1) for us in (ua, ub)],
                         axis=1, join="inner")
        x, y, unit = both[0].to_numpy(), both[1].to_numpy(), f"{ua[0][0]}s"
    else:
        x, y, unit = np.array([a[s] for s in seeds]), np.array([b[s] for s in seeds]), "seeds"
    diff, lo, hi = paired_mean_diff(sign * x, sign * y, n_boot=n_boot, seed=seed)
    return Comparison(*key, model, base, col.id, diff=diff, ci_low=lo, ci_high=hi, n=len(x), unit=unit)


def _overall(lb: Leaderboard, kinds: dict[str, str]) -> dict[str, pd.DataFrame]:
    """Per task family with at least two tables: its models × (task · dataset) ranking scores, with the
    mean rank over the tables a model is ranked in. Families never share a table: a perturbation
    predictor and an embedding model are not ranked against each other."""
    families: dict[str, dict[tuple[str, str], Table]] = defaultdict(dict)
    for key, t in lb.tables.items():
        families[t.family][key] = t
    return {f: _overall_frame(tables, kinds) for f, tables in sorted(families.items()) if len(tables) > 1}


def _overall_frame(tables: dict[tuple[str, str], Table], kinds: dict[str, str]) -> pd.DataFrame:
    scores: dict[str, dict[str, float]] = defaultdict(dict)
    ranks: dict[str, list[int]] = defaultdict(list)
    for (task, dataset), t in tables.items():
        label = f"{task} · {dataset}"
        for row in t.frame.itertuples(index=False):
            scores[row.model][label] = getattr(row, t.ranked_by) if t.ranked_by in t.frame else math.nan
            if not pd.isna(row.rank):
                ranks[row.model].append(int(row.rank))
    labels = [f"{task} · {dataset}" for task, dataset in tables]
    frame = pd.DataFrame(
        [{"model": m, "kind": kinds.get(m, "external"), **{lab: s.get(lab, math.nan) for lab in labels},
          "mean_rank": float(np.mean(ranks[m])) if ranks[m] else math.nan, "ranked_in": len(ranks[m])}
         for m, s in scores.items()],
        columns=["model", "kind", *labels, "mean_rank", "ranked_in"],
    )
    return frame.sort_values(["mean_rank", "model"], na_position="last", kind="stable").reset_index(drop=True)
