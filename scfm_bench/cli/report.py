"""``scfm-bench report RESULTS_DIR``: leaderboards from stored records (never from live objects)."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from scfm_bench.cli._common import out_console


class Format(str, Enum):
    term = "term"
    md = "md"
    csv = "csv"
    json = "json"


def register(app: typer.Typer) -> None:
    app.command("report")(report)


def report(
    results: Annotated[list[Path], typer.Argument(help="Results folder(s) of `scfm-bench run` or records.jsonl files.")],
    format: Annotated[Format, typer.Option("--format", "-f", help="term, md, csv or json.")] = Format.term,
    out: Annotated[Path | None, typer.Option("--out", help="Write here instead of standard output.")] = None,
) -> int:
    """Build the leaderboard from records: per task and dataset, failed/skipped cells with their reasons."""
    from scfm_bench.leaderboard import build_leaderboard, render_terminal, to_csv, to_json, to_markdown
    from scfm_bench.records import read_records

    lb = build_leaderboard(read_records(*results))
    if format is Format.term:
        render_terminal(lb, out_console())
        return 0
    if format is Format.csv:
        if out is None:
            to_csv(lb, sys.stdout)
        else:
            to_csv(lb, out)
        return 0
    text = to_markdown(lb) if format is Format.md else to_json(lb)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text)
    return 0
