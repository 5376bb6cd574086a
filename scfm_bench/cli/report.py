"""``scfm-bench report RESULTS…``: reports from stored records and manifests (never from live objects)."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from scfm_bench.cli._common import err_console, out_console


class Format(str, Enum):
    term = "term"
    md = "md"
    csv = "csv"
    json = "json"
    latex = "latex"
    html = "html"


def register(app: typer.Typer) -> None:
    app.command("report")(report)


def report(
    results: Annotated[list[Path], typer.Argument(help="Results folder(s) of `scfm-bench run` or records.jsonl files.")],
    format: Annotated[Format, typer.Option("--format", "-f", help="term, md, csv, json, latex or html.")] = Format.term,
    out: Annotated[Path | None, typer.Option("--out", help="Write here instead of standard output (required for html).")] = None,
    figures: Annotated[Path | None, typer.Option("--figures", help="Also write every figure as PNG and SVG into this folder.")] = None,
    unseen_only: Annotated[bool, typer.Option("--unseen-only", help="Rank each model only on datasets outside its "
                                              "pretraining corpus (datasets.yaml in_pretraining); the others are marked ⊘.")] = False,
) -> int:
    """Report per task and dataset: scores with CIs, scaled scores, paired tests vs the best baseline, failures with reasons."""
    from rich.text import Text

    from scfm_bench.exceptions import ConfigError
    from scfm_bench.leaderboard import build_report, render_terminal, to_csv, to_json, to_latex, to_markdown
    from scfm_bench.records import read_manifests, read_records, read_units

    if format is Format.html and out is None:
        raise ConfigError("--format html writes a file: pass --out PATH, e.g. --out report.html.")
    records = read_records(*results)
    rep = build_report(records, read_manifests(*results), units=read_units(*results), unseen_only=unseen_only)
    if figures is not None:
        from scfm_bench.leaderboard.figures import write_figures
        from scfm_bench.leaderboard.learning_curve import write_learning_curves

        written = write_figures(rep, figures) + write_learning_curves(records, figures)
        err_console().print(f"{len(written)} figure files written to {figures}", highlight=False)
    if format is not Format.term:
        for w in rep.warnings:  # term shows them inline; files would bury them
            err_console().print(Text("warning: ", style="bold yellow") + Text(w))
    if format is Format.term:
        if out is None:
            render_terminal(rep, out_console())
            return 0
        from rich.console import Console

        with out.open("w") as fh:
            render_terminal(rep, Console(file=fh, width=240, soft_wrap=False))
        err_console().print(f"report (term) written to {out}", highlight=False)
        return 0
    if format is Format.csv:
        to_csv(rep, sys.stdout if out is None else out)
        if out is not None:
            err_console().print(f"report (csv) written to {out}", highlight=False)
        return 0
    if format is Format.html:
        from scfm_bench.leaderboard.html import to_html

        text = to_html(rep)
    else:
        text = {Format.md: to_markdown, Format.json: to_json, Format.latex: to_latex}[format](rep)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text)
        err_console().print(f"report ({format.value}) written to {out}", highlight=False)
    return 0
