"""Rich rendering of a Report through the caller's Console only.

When a full table does not fit the console, a compact one is printed instead (rank, model,
aggregates, intervals, status, reason) and the caption says how to see the rest: a squeezed table
that truncates model names is worse than fewer columns.
"""

from __future__ import annotations

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table as RichTable
from rich.text import Text

from scfm_bench.leaderboard.report import Report
from scfm_bench.leaderboard.views import View, footer, sections

_ROW_STYLE = {"failed": "red", "skipped": "yellow", "incomplete": "yellow"}
_FREE_TEXT = {"model", "status", "reason", "kind", "column", "resampled"}


def render_terminal(report: Report, console: Console) -> None:
    for w in report.warnings:
        console.print(Text("warning: ", style="bold yellow") + Text(w))
    for s in sections(report):
        for i, view in enumerate(s.views):
            title = f"{s.title} — {view.title}" if i else s.title
            note = " ".join(s.notes) if i == 0 else ""
            full = _rich_table(view, title, note)
            if view.compact and Measurement.get(console, console.options.update_width(10_000), full).maximum > console.width:
                full = _rich_table(view, title, note, compact=True)
            console.print(full)
    for line in footer(report):
        console.print(Text(line, style="dim"))


def _rich_table(view: View, title: str, note: str, *, compact: bool = False) -> RichTable:
    keep = [i for i, n in enumerate(view.header) if not compact or n in view.compact]
    if compact:
        note += (f" {len(view.header) - len(keep)} columns hidden to fit the terminal: widen it, "
                 "or use `scfm-bench report --format md`.")
    out = RichTable(title=title, caption=note.strip() or None, caption_justify="left")
    for i in keep:
        name = view.header[i]
        out.add_column(
            "#" if name == "rank" else name,
            justify="left" if name in _FREE_TEXT else "right",
            no_wrap=name not in _FREE_TEXT or name == "model",
            style="bold" if name in view.emphasis else None,
        )
    statuses = view.statuses or ["ok"] * len(view.rows)
    for status, cells in zip(statuses, view.rows):
        # Text, not str: model names and reasons may hold "[...]", which rich would read as markup
        out.add_row(*(Text(cells[i]) for i in keep), style=_ROW_STYLE.get(status))
    return out
