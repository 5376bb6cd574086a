"""``scfm-bench run``: the benchmark matrix, locally, into records and a leaderboard."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from scfm_bench.cli._common import (
    BatchKey,
    BatchSize,
    Checkpoint,
    CountsLayer,
    Device,
    LabelKey,
    OntologyKey,
    RoundCounts,
    SuiteDir,
    checkpoint_params,
    err_console,
    out_console,
    plural,
    settings,
)


def register(app: typer.Typer) -> None:
    app.command("run")(run)


def run(
    task: Annotated[list[str], typer.Option("--task", "-t", help="Task name(s) from tasks/ (default: all).")] = [],
    dataset: Annotated[list[str], typer.Option("--dataset", "-d", help="Dataset name from datasets.yaml, or a path to an .h5ad.")] = [],
    model: Annotated[list[str], typer.Option("--model", "-m", help="Model key(s) (default: the task's models).")] = [],
    seeds: Annotated[list[int], typer.Option("--seeds", help="Seeds, e.g. --seeds 0 1 2 (default: the task's).")] = [],
    model_param: Annotated[list[str], typer.Option("--model-param", help="MODEL.KEY=VALUE, e.g. precomputed.obsm_key=X_mine.")] = [],
    checkpoint: Checkpoint = [],
    label_key: LabelKey = None,
    batch_key: BatchKey = None,
    ontology_key: OntologyKey = None,
    counts_layer: CountsLayer = None,
    round_counts: RoundCounts = False,
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Where run records go.")] = Path("results"),
    resume: Annotated[bool, typer.Option(help="Skip cells whose latest records in --output-dir are final (no failure) for the same input and model parameters.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the dataset x model x task x seed matrix and exit.")] = False,
    device: Device = None,
    batch_size: BatchSize = None,
    suite_dir: SuiteDir = None,
    executor: Annotated[str | None, typer.Option(help="local (this process, default) | local-pool (jobs in --max-parallel processes, "
                                                      "default: one per CPU) | slurm (jobs via submitit). Env SCFM_BENCH_EXECUTOR.")] = None,
    slurm_partition: Annotated[str | None, typer.Option(help="Slurm partition.", rich_help_panel="Slurm")] = None,
    slurm_account: Annotated[str | None, typer.Option(help="Slurm account.", rich_help_panel="Slurm")] = None,
    slurm_qos: Annotated[str | None, typer.Option(help="Slurm QOS.", rich_help_panel="Slurm")] = None,
    slurm_time: Annotated[str | None, typer.Option(help="Time limit per job: minutes or [D-]HH:MM:SS (default 120).", rich_help_panel="Slurm")] = None,
    slurm_mem: Annotated[str | None, typer.Option(help="Memory per job, e.g. 32G.", rich_help_panel="Slurm")] = None,
    slurm_gpus: Annotated[int | None, typer.Option(help="GPUs per job (default: 1 for models that need a GPU, else 0).", rich_help_panel="Slurm")] = None,
    max_parallel: Annotated[int | None, typer.Option(min=1, help="At most this many jobs at once: Slurm array jobs, or local processes "
                                                          "(with local, N > 1 runs a pool of N processes).")] = None,
    max_retries: Annotated[int, typer.Option(help="Resubmissions of a job killed by the infrastructure (node failure, pre-emption, time-out, OOM).", rich_help_panel="Slurm")] = 2,
    detach: Annotated[bool, typer.Option("--detach", help="Return after submitting (then `scfm-bench status/collect RUN_DIR`).", rich_help_panel="Slurm")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings, errors and the final table.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> int:
    """Run the benchmark: with no arguments, the packaged default suite on the embedded default dataset."""
    from scfm_bench.cli import configure_logging
    from scfm_bench.progress import set_enabled
    from scfm_bench.runner import RunOptions, build_plan, execute

    configure_logging(-1 if quiet else (1 if verbose else 0))
    set_enabled(not quiet and sys.stderr.isatty())
    cfg = settings(device=device, batch_size=batch_size, executor=executor)
    opts = RunOptions(suite_dir=suite_dir, tasks=task, datasets=dataset, models=model, seeds=seeds,
                      model_params=[*model_param, *checkpoint_params(checkpoint)], label_key=label_key, batch_key=batch_key,
                      ontology_key=ontology_key, counts_layer=counts_layer,
                      round_counts=round_counts)
    plan = build_plan(opts, env_seed=cfg.seed)
    if dry_run:
        _print_matrix(plan)
        _print_not_run(plan)
        return 0
    command_line = ["scfm-bench", *sys.argv[1:]]
    with _interruptible():
        try:
            if cfg.executor == "slurm":
                from scfm_bench.runner.slurm import SlurmOptions, execute_slurm

                summary, job_run = execute_slurm(plan, opts, cfg, SlurmOptions(
                    partition=slurm_partition, account=slurm_account, qos=slurm_qos, time=slurm_time, mem=slurm_mem,
                    gpus=slurm_gpus, max_parallel=max_parallel, max_retries=max_retries),
                    output_dir=output_dir, resume=resume, detach=detach, command_line=command_line)
                if job_run is not None and detach:
                    err_console().print(f"submitted {len(job_run.entries)} Slurm jobs; follow with `scfm-bench status "
                                        f"{job_run.run_dir}` and gather with `scfm-bench collect {job_run.run_dir}`",
                                        highlight=False)
                    return 0
            elif cfg.executor == "local-pool" or (max_parallel or 1) > 1:
                import os

                from scfm_bench.runner.pool import execute_pool

                job_run = None
                summary = execute_pool(plan, opts, cfg, workers=max_parallel or os.cpu_count() or 1, output_dir=output_dir,
                                       resume=resume, command_line=command_line)
            else:
                job_run = None
                summary = execute(plan, cfg, output_dir=output_dir, resume=resume, command_line=command_line)
        except KeyboardInterrupt:
            err_console().print("interrupted — records so far kept; resume with --resume", highlight=False)
            return 130
    _print_summary(summary, output_dir)
    _print_not_run(plan)
    if job_run is not None:
        for line in job_run.problems():
            err_console().print(f"  job {line}", highlight=False, markup=False)
        return job_run.exit_code(summary.records)
    return summary.exit_code


@contextmanager
def _interruptible():
    """SIGTERM (scancel, a batch system's pre-emption, kill) ends the run like Ctrl-C: cleanly, records kept."""
    import signal

    def stop(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread (e.g. called from a test harness): keep the default
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _print_not_run(plan) -> None:
    """What the suite holds that this run could not use (a task on a dataset it does not fit), and why."""
    for line in plan.skipped:
        err_console().print(f"  not run: {line}", highlight=False, markup=False)


def _print_matrix(plan) -> None:
    from rich.table import Table

    table = Table(title=f"{plural(len(plan.cells), 'cell')} (suite: {plan.suite.root})")
    for col in ("task", "dataset", "model", "seed", "metric suite"):
        table.add_column(col)
    for c in plan.cells:
        table.add_row(c.task, c.dataset, c.model, str(c.seed), plan.metric_suites[c.task][0])
    out_console().print(table)


def _print_summary(summary, output_dir: Path) -> None:
    from scfm_bench.leaderboard import build_report, render_terminal
    from scfm_bench.records import read_manifests, read_records

    console = out_console()
    if summary.records:
        render_terminal(build_report(summary.records, read_manifests(summary.run_dir)), console)
    elif summary.resumed:  # nothing left to run: the merged leaderboard of the whole output folder
        render_terminal(build_report(read_records(output_dir), read_manifests(output_dir)), console)
        err_console().print(f"nothing left to run: all {len(summary.resumed)} cells have records in {output_dir}; "
                            "no new run folder was made", highlight=False)
        return
    n = {s: len({r.cell for r in summary.records if r.status == s}) for s in ("ok", "skipped", "failed")}
    msg = (f"run {summary.run_id}: records in {summary.run_dir} — cells with failures: {n['failed']}, "
           f"with skips: {n['skipped']}")
    if summary.resumed:
        msg += f", resumed (not re-run): {len(summary.resumed)}"
    err_console().print(msg, highlight=False)
    for r in summary.records:
        if r.status != "ok" and r.metric == "*":
            err_console().print(f"  {r.status}: {r.task} · {r.dataset} · {r.model} · seed {r.seed}: {r.reason}", highlight=False, markup=False)
