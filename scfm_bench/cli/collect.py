"""``scfm-bench collect RUN_DIR``: gather a Slurm run's finished jobs into the leaderboard."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scfm_bench.cli._common import err_console, out_console


def register(app: typer.Typer) -> None:
    app.command("collect")(collect)


def collect(
    run_dir: Annotated[Path, typer.Argument(help="Run folder of `scfm-bench run --executor slurm` (<output-dir>/runs/<run_id>).")],
) -> int:
    """Print the leaderboard of the jobs finished so far and exit with the run's code: 0 all ok, 1 a
    cell failed or a job is unfinished or lost (re-run with --resume), 2 bad input."""
    from scfm_bench.leaderboard import build_report, render_terminal
    from scfm_bench.records import read_manifests, read_records
    from scfm_bench.runner.slurm import SlurmRun

    run = SlurmRun.load(run_dir)
    run.refresh()
    records = read_records(run_dir) if any(Path(run_dir).glob("records/*.jsonl")) else []
    if records:
        render_terminal(build_report(records, read_manifests(run_dir)), out_console())
    counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(run.counts().items()))
    err_console().print(f"{len(run.entries)} jobs: {counts}; {len(records)} records in {run_dir}", highlight=False)
    for line in run.problems():
        err_console().print(f"  job {line}", highlight=False, markup=False)
    return run.exit_code(records)
