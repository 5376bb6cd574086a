"""``scfm-bench compare BASELINE NEW``: the CI regression gate (exit 1 on a regression or a missing cell)."""

from __future__ import annotations

import json
from dataclasses import asdict
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from scfm_bench.cli._common import err_console, out_console


class Format(str, Enum):
    term = "term"
    json = "json"


def register(app: typer.Typer) -> None:
    app.command("compare")(compare)


def compare(
    baseline: Annotated[Path, typer.Argument(help="Baseline results folder or records.jsonl.")],
    new: Annotated[Path, typer.Argument(help="New results folder or records.jsonl.")],
    tolerance: Annotated[float, typer.Option(help="Absolute change tolerated before a cell counts as changed.", min=0)] = 0.01,
    metric: Annotated[list[str] | None, typer.Option("--metric", help="Only these metric ids (repeatable).")] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML here (one testcase per cell).")] = None,
    format: Annotated[Format, typer.Option("--format", "-f", help="term (tables) or json.")] = Format.term,
    out: Annotated[Path | None, typer.Option("--out", help="Write the comparison here instead of standard output.")] = None,
) -> int:
    """Match records by (task, dataset, model, metric, seed); direction-aware regressions beyond the tolerance fail."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from scfm_bench.leaderboard.compare import compare_records, to_junit
    from scfm_bench.records import read_manifests, read_records

    result = compare_records(read_records(baseline), read_records(new), tolerance=tolerance, metrics=metric,
                             base_manifests=read_manifests(baseline), new_manifests=read_manifests(new))
    if junit:
        junit.write_text(to_junit(result))
        err_console().print(f"JUnit XML written to {junit}", highlight=False)
    if format is Format.json:
        text = json.dumps({"tolerance": tolerance, "failed": result.failed, "provenance": list(result.provenance),
                           "not_compared": list(result.not_compared), "cells": [asdict(c) for c in result.cells]}, indent=2)
        if out is None:
            typer.echo(text)
        else:
            out.write_text(text + "\n")
            err_console().print(f"comparison written to {out}", highlight=False)
        return 1 if result.failed else 0
    fh = out.open("w") if out is not None else None
    console = out_console() if fh is None else Console(file=fh, width=240, soft_wrap=False)
    changed = [c for c in result.cells if c.status != "unchanged"]
    if changed:
        table = Table(title="Changed cells")
        for h in ("status", "task", "dataset", "model", "metric", "seed", "baseline", "new", "delta", "note"):
            table.add_column(h)
        for c in changed:
            fmt = [f"{v:.4f}" if isinstance(v, float) else "—" for v in (c.baseline, c.new, c.delta)]
            style = "red" if c.status in ("regression", "missing") else "green" if c.status == "improvement" else None
            table.add_row(*map(Text, (c.status, c.task, c.dataset, c.model, c.metric, str(c.seed), *fmt, c.note)), style=style)
        console.print(table)
    for line in result.provenance:
        console.print(Text("provenance changed: " + line, style="yellow"))
    for line in result.not_compared:
        console.print(Text(line + ".", style="yellow"))
    counts = {s: result.count(s) for s in ("regression", "missing", "improvement", "new", "unchanged")}
    console.print(Text(", ".join(f"{n} {s}" for s, n in counts.items()) + f" (tolerance {tolerance})."))
    if fh is not None:
        fh.close()
        err_console().print(f"comparison written to {out}", highlight=False)
    return 1 if result.failed else 0
