"""``scfm-bench status RUN_DIR``: the jobs of a Slurm submission, by state."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scfm_bench.cli._common import out_console


def register(app: typer.Typer) -> None:
    app.command("status")(status)


def status(
    run_dir: Annotated[Path, typer.Argument(help="Run folder of `scfm-bench run --executor slurm` (<output-dir>/runs/<run_id>).")],
    jobs: Annotated[bool, typer.Option("--jobs", help="One line per job.")] = False,
) -> int:
    """Show the jobs of a Slurm run by state (PENDING, RUNNING, COMPLETED, CANCELLED, TIMEOUT, LOST, ...)."""
    from rich.table import Table

    from scfm_bench.runner.slurm import SlurmRun

    run = SlurmRun.load(run_dir)
    run.refresh()
    table = Table(title=f"{len(run.entries)} jobs of {run_dir}")
    table.add_column("state")
    table.add_column("jobs", justify="right")
    for state, n in sorted(run.counts().items()):
        table.add_row(state, str(n))
    out_console().print(table)
    if jobs:
        for e in run.entries:
            out_console().print(f"{e.job_id}\t{e.state}\t{e.spec.name}", highlight=False, markup=False)
    return 0
