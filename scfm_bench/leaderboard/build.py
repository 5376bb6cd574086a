"""Records → one table per (task, dataset). Pure: no I/O, no recomputed aggregates.

Only the newest record per key counts. A metric cell holds the mean (and sd, n) over seeds of the
ok values; failed and skipped records never become numbers but always show up, with their reasons,
as a row status and in the long format. A model without an ok ranking score in every seed the table
ran is ``incomplete`` (its mean covers fewer seeds, so it is not comparable): it is ranked after
every complete model, and the reason names the seeds it lacks. Controls and ceilings (the model's
declared ``kind``, stamped in the records' params) are reference rows: shown, never ranked.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from scfm_bench.records import MetricResult, latest_per_key

log = logging.getLogger(__name__)

CELL_METRIC = "*"  # metric of a record standing for a whole (task, dataset, model, seed) cell
AGGREGATE = "aggregate"
EFFICIENCY = ("embed_s", "cells_per_s", "peak_ram_mb", "peak_gpu_mb")
INFO = ("rank", "model", *EFFICIENCY, "seeds", "status", "reason")
LONG_COLUMNS = (
    "task",
    "dataset",
    "model",
    "column",
    "metric",
    "submetric",
    "family",
    "higher_is_better",
    "mean",
    "sd",
    "n",
    "status",
    "reason",
    "rank",
    "model_status",
)
_STATUS_ORDER = {"ok": 0, "partial": 1, "incomplete": 2, "skipped": 3, "failed": 4}
REFERENCE_KINDS = ("control", "ceiling")  # shown beside the ranked models, never ranked


@dataclass(frozen=True)
class Column:
    """A metric or aggregate column: one (metric, submetric) of the records."""

    id: str
    metric: str
    submetric: str | None
    family: str | None
    higher_is_better: bool
    is_count: bool = False  # a count (e.g. lcad_n_errors): shown as such, never scaled or averaged with scores

    @property
    def is_aggregate(self) -> bool:
        return self.family == AGGREGATE


@dataclass(frozen=True)
class Cell:
    """One model and column: statistics over seeds of the ok values, and what went wrong in the rest."""

    mean: float  # NaN when no seed has an ok value
    sd: float  # NaN unless n > 1
    n: int
    status: str  # ok / partial / skipped / failed
    reason: str | None


@dataclass(frozen=True)
class Table:
    """The leaderboard of one (task, dataset).

    ``frame`` has one row per model, best first: ``rank`` (nullable Int64), ``model``, one column per
    metric/aggregate (mean over seeds; plus ``<id>_sd`` and ``<id>_n`` when any model ran > 1 seed),
    ``embed_s``, ``peak_ram_mb``, ``seeds``, ``status`` and ``reason``. ``cells`` holds the same
    numbers keyed by (model, column id) where the model has records for that column (column id "*"
    when no record names a metric, i.e. every cell failed whole).
    """

    task: str
    dataset: str
    frame: pd.DataFrame
    columns: tuple[Column, ...]
    cells: dict[tuple[str, str], Cell]
    ranked_by: str | None  # a column id; None = direction-signed mean of the metrics
    min_max_scaled: bool | None  # from the records' params; None when they do not say
    # model -> where its embedding was computed when not in the timed embedding step (no timings shown)
    untimed: dict[str, str] = field(default_factory=dict)
    family: str = ""  # task family (params task_family, else the task): only tables of one family compare
    references: frozenset[str] = frozenset()  # controls and ceilings: rows shown, never ranked

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.columns if not c.is_aggregate)

    @property
    def aggregates(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.columns if c.is_aggregate)

    @property
    def info(self) -> tuple[str, ...]:
        return INFO


@dataclass(frozen=True)
class Leaderboard:
    tables: dict[tuple[str, str], Table]  # keyed by (task, dataset), sorted
    long: pd.DataFrame  # LONG_COLUMNS: one row per task, dataset, model and column with records
    kinds: dict[str, str] = field(default_factory=dict)  # model -> baseline / scfm / control / ceiling / external

    def to_frame(self) -> pd.DataFrame:
        return self.long.copy()


def column_id(metric: str, submetric: str | None) -> str:
    return metric if submetric is None else f"{metric}/{submetric}"


def sd_column(col: str) -> str:
    return f"{col}_sd"


def n_column(col: str) -> str:
    return f"{col}_n"


def model_kinds(records: list[MetricResult], kinds: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each model's kind: from ``kinds`` when given (missing models: 'external'), else the newest record's
    params ``kind`` (the runner stamps the adapter's or predictor's declared kind), else the registry."""
    from scfm_bench.registry import ADAPTERS

    if kinds is not None:
        return {m: kinds.get(m, "external") for m in {r.model for r in records}}
    out = {r.model: r.params["kind"] for r in records if "kind" in r.params}  # records come oldest first
    for m in {r.model for r in records} - set(out):
        out[m] = ADAPTERS.get(m).kind if m in ADAPTERS else "external"
    return out


def build_leaderboard(records: list[MetricResult], kinds: Mapping[str, str] | None = None) -> Leaderboard:
    # latest_per_key keeps the last record it sees per key; sort so "last" means newest whatever
    # order the caller passes (the sort is stable, so ties keep their order).
    latest = latest_per_key(sorted(records, key=lambda r: r.created_at))
    kinds = model_kinds(latest, kinds)
    groups: dict[tuple[str, str], list[MetricResult]] = defaultdict(list)
    for r in latest:
        groups[(r.task, r.dataset)].append(r)
    references = frozenset(m for m, k in kinds.items() if k in REFERENCE_KINDS)
    tables = {key: _build_table(*key, groups[key], references) for key in sorted(groups)}
    rows = [row for t in tables.values() for row in _long_rows(t)]
    long = pd.DataFrame(rows, columns=list(LONG_COLUMNS))
    long["rank"] = long["rank"].astype("Int64")
    long["n"] = long["n"].astype(int)
    return Leaderboard(tables=tables, long=long, kinds=kinds)


def _combine(statuses: Iterable[str]) -> str:
    s = set(statuses)
    if s == {"ok"}:
        return "ok"
    if "ok" in s:
        return "partial"
    return "failed" if "failed" in s else "skipped"


def _reasons(records: Iterable[MetricResult]) -> str | None:
    distinct = dict.fromkeys(r.reason for r in records if r.status != "ok" and r.reason)
    return "; ".join(distinct) or None


def _cell(records: list[MetricResult]) -> Cell:
    values = [r.value for r in records if r.status == "ok" and r.value is not None]
    n = len(values)
    return Cell(
        mean=statistics.fmean(values) if n else math.nan,
        sd=statistics.stdev(values) if n > 1 else math.nan,
        n=n,
        status=_combine(r.status for r in records),
        reason=_reasons(records),
    )


def _columns(records: list[MetricResult]) -> dict[str, Column]:
    by_id: dict[str, list[MetricResult]] = defaultdict(list)  # insertion order = first appearance
    for r in records:
        by_id[column_id(r.metric, r.submetric)].append(r)
    out = {}
    for cid, rs in by_id.items():
        # a failed record may carry defaults for family and direction; the newest ok record decides
        decisive = [r for r in rs if r.status == "ok"] or rs
        out[cid] = Column(
            id=cid,
            metric=rs[0].metric,
            submetric=rs[0].submetric,
            family=next((r.family for r in reversed(decisive) if r.family), None),
            higher_is_better=decisive[-1].higher_is_better,
            is_count=bool(decisive[-1].params.get("count")),
        )
    return out


def _last_param(records: list[MetricResult], name: str) -> Any:
    return next((r.params[name] for r in reversed(records) if name in r.params), None)


def _efficiency(records: list[MetricResult], field: str) -> float:
    """Mean over seeds of a timing; per seed the max over that cell's records (they share timings).

    ``cells_per_s`` is the cell count (params ``n_cells``) over the embedding wall time.
    """
    per_seed: dict[int, float] = {}
    if field in ("embed_s", "cells_per_s") and _computed_in(records):
        return math.nan
    for r in records:
        # the runner stamps a cached embedding with the timings of the run that computed it
        if field == "cells_per_s":
            n, s = r.params.get("n_cells"), r.timings.embed_s
            value = n / s if n and s else None
        else:
            value = getattr(r.timings, field)
        if value is None:
            continue
        per_seed[r.seed] = max(value, per_seed.get(r.seed, value))
    return statistics.fmean(per_seed.values()) if per_seed else math.nan


def _computed_in(records: list[MetricResult]) -> str | None:
    """Where the embedding was computed when the adapter says it was not in the timed step (pca: preprocessing)."""
    return next((r.params["embedding_info"]["computed_in"] for r in reversed(records)
                 if "computed_in" in (r.params.get("embedding_info") or {})), None)


def _build_table(task: str, dataset: str, records: list[MetricResult], references: frozenset[str]) -> Table:
    columns = _columns([r for r in records if r.metric != CELL_METRIC])
    by_model: dict[str, list[MetricResult]] = defaultdict(list)
    for r in records:
        by_model[r.model].append(r)

    cells: dict[tuple[str, str], Cell] = {}
    by_column: dict[tuple[str, str], list[MetricResult]] = defaultdict(list)  # one pass, not one per column
    for r in records:
        if r.metric != CELL_METRIC:
            by_column[(r.model, column_id(r.metric, r.submetric))].append(r)
    for model, recs in by_model.items():
        whole = [r for r in recs if r.metric == CELL_METRIC]
        # where every cell failed whole there are no columns; keep the failures under "*"
        for cid in list(columns) or [CELL_METRIC]:
            own = by_column.get((model, cid), [])
            # a failed whole cell counts against every column of that seed
            if own or whole:
                cells[(model, cid)] = _cell(own + whole)
    multi_seed = any(len({r.seed for r in recs}) > 1 for recs in by_model.values())

    rows = []
    for model, recs in by_model.items():
        row: dict[str, object] = {"model": model}
        for cid in columns:
            cell = cells.get((model, cid))
            row[cid] = cell.mean if cell else math.nan
            if multi_seed:
                row[sd_column(cid)] = cell.sd if cell else math.nan
                row[n_column(cid)] = cell.n if cell else 0
        row |= {f: _efficiency(recs, f) for f in EFFICIENCY}
        row |= {
            "seeds": len({r.seed for r in recs}),
            "status": _combine(r.status for r in recs),
            "reason": _reasons(recs),
        }
        rows.append(row)
    frame = pd.DataFrame(rows)

    ranked_by, score, higher = _primary_score(task, dataset, records, columns, frame)
    score = score.where(~frame["status"].isin(["failed", "skipped"]) & ~frame["model"].isin(references))
    lacking = _missing_seeds(records, ranked_by if ranked_by in columns else None)
    incomplete = frame["model"].map(lambda m: bool(lacking.get(m))) & score.notna()
    for i in frame.index[incomplete]:
        what = "; ".join(f"seed {s}: {why}" for s, why in lacking[frame.at[i, "model"]].items())
        frame.at[i, "status"], frame.at[i, "reason"] = "incomplete", f"incomplete ({what})"
    # complete models first; incomplete ones are ranked among themselves after them
    complete_rank = score.where(~incomplete).rank(method="min", ascending=not higher)
    later_rank = score.where(incomplete).rank(method="min", ascending=not higher) + complete_rank.notna().sum()
    rank = complete_rank.fillna(later_rank)
    frame.insert(0, "rank", rank.astype("Int64"))
    # ranked rows, then the reference rows (controls, ceilings), then what has no score
    frame["_ref"] = ~frame["model"].isin(references)
    frame = frame.sort_values(
        ["rank", "status", "_ref", "model"],
        key=lambda s: s.map(_STATUS_ORDER) if s.name == "status" else s,
        na_position="last",
        kind="stable",
    ).drop(columns="_ref").reset_index(drop=True)

    scaled = _last_param(records, "min_max_scaled")
    return Table(
        task=task,
        dataset=dataset,
        frame=frame,
        columns=tuple(columns.values()),
        cells=cells,
        ranked_by=ranked_by,
        min_max_scaled=None if scaled is None else bool(scaled),
        family=_task_family(records),
        untimed={m: where for m, recs in by_model.items() if (where := _computed_in(recs))},
        references=references & set(frame["model"]),
    )


def _missing_seeds(records: list[MetricResult], ranked_by: str | None) -> dict[str, dict[int, str]]:
    """model -> {seed: why} for the seeds of this table where the model has no ok ranking value
    (every metric counts when the table is ranked by their mean)."""
    seeds = sorted({r.seed for r in records})
    ok: dict[str, set[int]] = defaultdict(set)
    why: dict[tuple[str, int], list[MetricResult]] = defaultdict(list)
    columns = {column_id(r.metric, r.submetric) for r in records if r.metric != CELL_METRIC}
    by_seed: dict[tuple[str, int], set[str]] = defaultdict(set)
    for r in records:
        cid = column_id(r.metric, r.submetric)
        if r.status == "ok" and (ranked_by is None or cid == ranked_by):
            by_seed[(r.model, r.seed)].add(cid)
        elif r.status != "ok":
            why[(r.model, r.seed)].append(r)
    for (model, seed), have in by_seed.items():
        if (have == columns) if ranked_by is None else ranked_by in have:
            ok[model].add(seed)
    out: dict[str, dict[int, str]] = {}
    for model in {r.model for r in records}:
        lacking = {s: _reasons(why[(model, s)]) or "no records" for s in seeds if s not in ok[model]}
        if lacking:
            out[model] = lacking
    return out


def _task_family(records: list[MetricResult]) -> str:
    family = _last_param(records, "task_family")
    if family is None:  # records written before the runner stamped it: direct tasks name their table
        family = "perturbation" if _last_param(records, "per_perturbation_table") else "embedding"
    return str(family)


def _primary_score(
    task: str, dataset: str, records: list[MetricResult], columns: dict[str, Column], frame: pd.DataFrame
) -> tuple[str | None, pd.Series, bool]:
    """(ranking column or None, score per row, higher is better)."""
    primary = _last_param(records, "primary")
    if primary is not None:
        primary = str(primary)
        if primary in columns:
            return primary, frame[primary], columns[primary].higher_is_better
        # ranking by something else would silently contradict the suite
        log.warning("%s/%s: primary score %r has no records; the table is left unranked.", task, dataset, primary)
        return primary, pd.Series(math.nan, index=frame.index), True
    aggregates = [c for c in columns.values() if c.is_aggregate]
    if aggregates:
        last = aggregates[-1]
        return last.id, frame[last.id], last.higher_is_better
    metrics = [c for c in columns.values() if not c.is_count]
    if not metrics:
        return None, pd.Series(math.nan, index=frame.index), True
    # signs make every metric higher-is-better; a model missing any metric gets no mean (skipna=False)
    signed = pd.concat([frame[c.id] * (1 if c.higher_is_better else -1) for c in metrics], axis=1)
    return None, signed.mean(axis=1, skipna=False), True


def _long_rows(table: Table) -> Iterable[dict[str, object]]:
    columns = table.columns or (Column(CELL_METRIC, CELL_METRIC, None, None, True),)
    for row in table.frame.itertuples(index=False):
        for col in columns:
            cell = table.cells.get((row.model, col.id))
            if cell is None:  # no record at all for this model and column: nothing to report
                continue
            yield {
                "task": table.task,
                "dataset": table.dataset,
                "model": row.model,
                "column": col.id,
                "metric": col.metric,
                "submetric": col.submetric,
                "family": col.family,
                "higher_is_better": col.higher_is_better,
                "mean": cell.mean,
                "sd": cell.sd,
                "n": cell.n,
                "status": cell.status,
                "reason": cell.reason,
                "rank": row.rank,
                "model_status": row.status,
            }
