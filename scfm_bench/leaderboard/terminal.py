"""Rich rendering of a Report through the caller's Console only.

A table wider than the console is split: the rank and model columns lead every part, the other
columns continue in the next table, and the caption says which columns moved there. Nothing is
hidden and no model name is truncated.
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
_KEYS = ("rank", "model")  # repeated in every part of a split table


def render_terminal(report: Report, console: Console) -> None:
    for w in report.warnings:
        console.print(Text("warning: ", style="bold yellow") + Text(w))
    for s in sections(report):
        for i, view in enumerate(s.views):
            title = f"{s.title} — {view.title}" if i else s.title
            note = " ".join(s.notes) if i == 0 else ""
            parts = _split(view, console)
            for j, cols in enumerate(parts):
                moved = [view.header[k] for p in parts[j + 1:] for k in p if view.header[k] not in _KEYS]
                caption = note if j == 0 else ""
                if moved:
                    span = moved[0] if len(moved) == 1 else f"{moved[0]} to {moved[-1]} ({len(moved)} columns)"
                    caption += f" Too wide for the terminal: {span} continue in the next table."
                console.print(_rich_table(view, title if j == 0 else f"{title} (continued)", caption, cols))
    for line in footer(report):
        console.print(Text(line, style="dim"))


def _width(view: View, cols: list[int], console: Console) -> int:
    return Measurement.get(console, console.options.update_width(10_000), _rich_table(view, "", "", cols)).maximum


def _split(view: View, console: Console) -> list[list[int]]:
    """Column indices of each part: the key columns, then as many others as fit (at least one)."""
    keys = [i for i, h in enumerate(view.header) if h in _KEYS]
    rest = [i for i in range(len(view.header)) if i not in keys]
    if _width(view, keys + rest, console) <= console.width:
        return [keys + rest]
    parts, current = [], []
    for i in rest:
        if current and _width(view, keys + current + [i], console) > console.width:
            parts.append(keys + current)
            current = []
        current.append(i)
    return parts + [keys + current]


def _rich_table(view: View, title: str, note: str, cols: list[int]) -> RichTable:
    out = RichTable(title=title or None, caption=note.strip() or None, caption_justify="left")
    for i in cols:
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
        out.add_row(*(Text(cells[i]) for i in cols), style=_ROW_STYLE.get(status))
    return out
