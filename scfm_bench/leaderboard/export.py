"""Cell formatting and the JSON shape of one table, shared by every output format (see formats.py)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pandas as pd

from scfm_bench.leaderboard.build import EFFICIENCY, Cell, Column, Table

MISSING = "—"
_EFFICIENCY_FORMAT = {"embed_s": "{:.2f}", "cells_per_s": "{:.0f}", "peak_ram_mb": "{:.0f}", "peak_gpu_mb": "{:.0f}"}


def format_value(cell: Cell | None, count: bool = False) -> str:
    if cell is None or cell.n == 0:
        return MISSING
    fmt = ("{:.0f}" if float(cell.mean).is_integer() else "{:.1f}") if count else "{:.3f}"
    return fmt.format(cell.mean) + (f" ± {cell.sd:.{1 if count else 3}f}" if cell.n > 1 else "")


def format_efficiency(name: str, value: float) -> str:
    return MISSING if math.isnan(value) else _EFFICIENCY_FORMAT[name].format(value)


def format_rank(rank: Any, reference: bool = False) -> str:
    return "ref" if reference else MISSING if pd.isna(rank) else str(int(rank))


def header(column: Column) -> str:
    return f"{column.id} {'↑' if column.higher_is_better else '↓'}" + (" (count)" if column.is_count else "")


def caption(table: Table) -> str:
    if table.frame["rank"].isna().all():
        ranked = "Unranked: no model has a " + (f"{table.ranked_by} score." if table.ranked_by else "score.")
    elif table.ranked_by is None:
        counts = "; counts left out" if any(c.is_count for c in table.columns) else ""
        ranked = f"Ranked by the mean of the metrics (lower-is-better ones negated{counts})."
    else:
        direction = next((c.higher_is_better for c in table.columns if c.id == table.ranked_by), True)
        ranked = f"Ranked by {table.ranked_by} ({'higher' if direction else 'lower'} is better)."
    raw = " Values are raw (not min-max scaled)." if table.min_max_scaled is False else ""
    return ranked + raw


def display_rows(table: Table) -> Iterator[tuple[str, list[str]]]:
    """(status, formatted cells) per model in rank order; the cells line up with ``display_header``."""
    for row in table.frame.itertuples(index=False):
        cells = [
            format_rank(row.rank, row.model in table.references),
            row.model,
            *(format_value(table.cells.get((row.model, c.id)), c.is_count) for c in table.columns),
            *(format_efficiency(f, getattr(row, f)) for f in EFFICIENCY),
            row.status,
            row.reason or MISSING,
        ]
        yield row.status, cells


def display_header(table: Table) -> list[str]:
    return ["rank", "model", *(header(c) for c in table.columns), *EFFICIENCY, "status", "reason"]


def num(value: Any) -> float | None:
    return None if pd.isna(value) else float(value)


def _json_cell(cell: Cell | None) -> dict[str, Any] | None:
    if cell is None:
        return None
    return {"mean": num(cell.mean), "sd": num(cell.sd), "n": cell.n, "status": cell.status, "reason": cell.reason}


def json_table(table: Table) -> dict[str, Any]:
    columns = [
        {
            "id": c.id,
            "metric": c.metric,
            "submetric": c.submetric,
            "family": c.family,
            "kind": "aggregate" if c.is_aggregate else "count" if c.is_count else "metric",
            "higher_is_better": c.higher_is_better,
        }
        for c in table.columns
    ]
    rows = [
        {
            "rank": None if pd.isna(row.rank) else int(row.rank),
            "model": row.model,
            "reference": row.model in table.references,
            "status": row.status,
            "reason": row.reason,
            "seeds": int(row.seeds),
            **{f: num(getattr(row, f)) for f in EFFICIENCY},
            "values": {c.id: _json_cell(table.cells.get((row.model, c.id))) for c in table.columns},
        }
        for row in table.frame.itertuples(index=False)
    ]
    return {
        "task": table.task,
        "dataset": table.dataset,
        "family": table.family,
        "ranked_by": table.ranked_by,
        "min_max_scaled": table.min_max_scaled,
        "columns": columns,
        "rows": rows,
    }
