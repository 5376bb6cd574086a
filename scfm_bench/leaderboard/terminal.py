"""Rich rendering of a Leaderboard: one table per (task, dataset), through the caller's Console only.

When the full table (every metric) does not fit the console, a compact one is printed instead
(rank, model, aggregates, status, reason) and the caption says how to see the rest: a squeezed
table that truncates model names is worse than fewer columns.
"""

from __future__ import annotations

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table as RichTable
from rich.text import Text

from scfm_bench.leaderboard.build import Leaderboard, Table
from scfm_bench.leaderboard.export import caption, display_header, display_rows, header

_ROW_STYLE = {"failed": "red", "skipped": "yellow"}
_FREE_TEXT = {"model", "status", "reason"}


def render_terminal(lb: Leaderboard, console: Console) -> None:
    for table in lb.tables.values():
        full = _rich_table(table)
        if Measurement.get(console, console.options.update_width(10_000), full).maximum > console.width:
            full = _rich_table(table, compact=True)
        console.print(full)


def _rich_table(table: Table, *, compact: bool = False) -> RichTable:
    aggregates = {header(c) for c in table.columns if c.is_aggregate}
    names = display_header(table)
    keep = [i for i, n in enumerate(names) if not compact or n in aggregates or n in ("rank", "model", "status", "reason")]
    note = ""
    if compact:
        hidden = len(names) - len(keep)
        note = f" {hidden} columns hidden to fit the terminal: widen it, or use `scfm-bench report --format md`."
    out = RichTable(title=f"{table.task} · {table.dataset}", caption=caption(table) + note, caption_justify="left")
    for i in keep:
        name = names[i]
        out.add_column(
            "#" if name == "rank" else name,
            justify="left" if name in _FREE_TEXT else "right",
            no_wrap=name not in _FREE_TEXT or name == "model",
            style="bold" if name in aggregates else None,
        )
    for status, cells in display_rows(table):
        # Text, not str: model names and reasons may hold "[...]", which rich would read as markup
        out.add_row(*(Text(cells[i]) for i in keep), style=_ROW_STYLE.get(status))
    return out
