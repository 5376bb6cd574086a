"""The local process pool (``--executor local-pool`` or ``--max-parallel N`` with ``local``): the run's
jobs — the same job specs and job function as on Slurm (runner/jobs.py) — in N spawned processes on
this machine. Embedding and direct jobs first, then the evaluation jobs that read the cached
embeddings; every job writes its own records files, so the pool never shares a file between processes."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from scfm_bench.runner.jobs import JobSpec, make_jobs, run_job
from scfm_bench.runner.plan import Cell, Plan, RunOptions

log = logging.getLogger(__name__)


def execute_pool(plan: Plan, opts: RunOptions, settings, *, workers: int, output_dir: Path, resume: bool = False,
                 command_line: list[str] | None = None):
    """Run the plan's cells as jobs in ``workers`` processes; returns the RunSummary, as ``execute``."""
    from scfm_bench import __version__
    from scfm_bench.embed import resolve_device
    from scfm_bench.records import RunManifest, RunWriter, new_run_id, read_records
    from scfm_bench.runner.local import RunSummary, _load_and_validate, resumable
    from scfm_bench.runner.lock import output_lock
    from scfm_bench.runner.provenance import git_commit, machine_info, package_versions

    loaded, _ = _load_and_validate(plan, settings)  # bad input: exit 2 before anything is written (jobs re-check)
    output_dir = Path(output_dir)
    with output_lock(output_dir):
        done = resumable(plan, output_dir, {d: ds.sha256 for d, ds in loaded.items()}, settings) if resume else set()
        todo = [c for c in plan.cells if c not in done]
        run_id = new_run_id()
        writer = RunWriter(output_dir, run_id)
        summary = RunSummary(run_id, writer.dir, resumed=[c for c in plan.cells if c in done])
        if not todo:
            return summary
        device = resolve_device(settings.device)
        writer.write_manifest(RunManifest(
            run_id=run_id, package_version=__version__, git_commit=git_commit(), command_line=command_line or sys.argv,
            machine=machine_info(device), packages=package_versions(), suite=plan.to_dict(),
            settings=settings.model_dump(mode="json")))
        first, second = make_jobs(plan, opts, settings, output_dir=output_dir, run_id=run_id, cells=todo)
        _run_stages(writer, [first, second], workers, len(todo))
        if any(writer.dir.glob("records/*.jsonl")):
            summary.records = read_records(writer.dir)
    return summary


def _run_stages(writer, stages: list[list[JobSpec]], workers: int, n_cells: int) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    from scfm_bench.progress import progress_bar

    # spawn, not fork: a forked child inherits torch/OpenMP thread state and the parent's locks
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context)
    try:
        with progress_bar(f"{n_cells} cells in {workers} processes", n_cells, eta=True) as advance:
            for stage in stages:
                futures = {pool.submit(run_job, spec): spec for spec in stage}
                broken = False
                for future in as_completed(futures):
                    spec = futures[future]
                    try:
                        result = future.result()
                    except Exception as exc:  # noqa: BLE001 - a dead worker (BrokenProcessPool) or an unpicklable error
                        broken |= isinstance(exc, BrokenProcessPool)
                        result = {"error": f"{type(exc).__name__}: {exc}"}
                    if "error" in result:
                        log.error("job %s: %s", spec.name, result["error"])
                        if spec.kind != "embedding":  # the evaluation job records an embedding's failure
                            _record_failure(writer, spec.cells, result["error"])
                    if spec.kind != "embedding":
                        advance(len(spec.cells))
                if broken:  # a killed worker (e.g. OOM) breaks the pool: the next stage gets a fresh one
                    pool.shutdown(cancel_futures=True)
                    pool = ProcessPoolExecutor(workers, mp_context=context)
    finally:
        pool.shutdown(cancel_futures=True)


def _record_failure(writer, cells: tuple[Cell, ...], reason: str) -> None:
    """A whole-cell failure for each cell of a job that died without writing its records."""
    from scfm_bench.records import MetricResult, job_file_name
    from scfm_bench.runner.local import cell_job

    for c in cells:
        job = cell_job(c)
        if not (writer.dir / "records" / f"{job_file_name(job)}.jsonl").is_file():
            writer.write(job, [MetricResult(run_id=writer.dir.name, task=c.task, dataset=c.dataset, model=c.model, seed=c.seed,
                                            metric="*", status="failed", reason=f"job died: {reason}")])
