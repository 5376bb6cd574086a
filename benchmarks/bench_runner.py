"""Runner benchmarks.

1. ``--resume`` of a finished 1,000-cell matrix (2 models x 500 seeds on a tiny dataset): wall time
   of the whole command, and that nothing is recomputed; baseline: ``run --dry-run`` of the same
   matrix (CLI start-up + planning) measured in the same session. Goal: seconds.
2. ``--executor slurm`` overhead vs local on a 12-cell matrix of quick jobs (2 models x 6 seeds,
   three cheap metrics) on a one-node local Slurm cluster (started and stopped here; root + Debian).

Run: nice -n 10 python benchmarks/bench_runner.py [--repeats 3] [--skip-slurm]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests" / "runner")]  # the tests' quick suite and local cluster
from _util import report, scfm_bench_cmd, time_command
from quick_suite import quick_suite

from scfm_bench.records import MetricResult, RunWriter


def finished_matrix(root: Path, seeds: int) -> tuple[Path, Path]:
    """A suite and an output folder holding ok records for every cell, as a finished run leaves them."""
    from scfm_bench.data import load_dataset
    from scfm_bench.registry import ADAPTERS
    from scfm_bench.runner import RunOptions, build_plan
    from scfm_bench.runner.local import input_key
    from scfm_bench.settings import Settings

    suite = quick_suite(root / "suite", seeds=tuple(range(seeds)))
    plan = build_plan(RunOptions(suite_dir=suite))
    entry = plan.datasets["tiny"]
    ikey = input_key(load_dataset("tiny", entry, Settings(), suite_root=suite).sha256, entry)
    writer = RunWriter(root / "out", "bench")
    for c in plan.cells:
        params = {"input_key": ikey, "model_params": ADAPTERS.get(c.model)(plan.model_params[c.task][c.model], seed=c.seed).record_params()}
        writer.write(f"{c}", [MetricResult(run_id="bench", task=c.task, dataset=c.dataset, model=c.model, seed=c.seed,
                                           metric=m, value=0.5, family="bio", params=params)
                              for m in ("asw_label", "asw_batch", "nmi_kmeans")])
    return suite, root / "out"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-slurm", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = {"SCFM_BENCH_CACHE_DIR": str(tmp / "cache"), "PYTHONPATH": str(HERE.parent)}
        os.environ.update(env)
        suite, out = finished_matrix(tmp, seeds=500)
        base = time_command([*scfm_bench_cmd(), "run", "--suite-dir", str(suite), "--dry-run", "-q"], repeats=args.repeats)
        resume = time_command([*scfm_bench_cmd(), "run", "--suite-dir", str(suite), "-o", str(out), "--resume", "-q"],
                              repeats=args.repeats)
        assert len(list((out / "runs").iterdir())) == 1, "a resume with nothing left made a run folder"
        report("resume_finished_1000_cells", resume, base, "dry_run")

        if args.skip_slurm:
            return
        from slurm_cluster import LocalSlurm

        cluster = LocalSlurm(tmp / "slurm")
        if (why := cluster.start()) is not None:
            print(f"# slurm benchmark skipped: {why}", flush=True)
            return
        try:
            suite12 = quick_suite(tmp / "suite12", seeds=tuple(range(6)))
            n = iter(range(1000))

            def fresh() -> None:  # every repeat computes its embeddings anew
                os.environ["SCFM_BENCH_CACHE_DIR"] = str(tmp / f"cache{next(n)}")

            cmd = [*scfm_bench_cmd(), "run", "--suite-dir", str(suite12), "-q"]
            local = time_command([*cmd, "-o", str(tmp / "local")], repeats=args.repeats, before=fresh)
            slurm = time_command([*cmd, "-o", str(tmp / "slurm"), "--executor", "slurm"], repeats=args.repeats, before=fresh)
            report("slurm_12_cells", slurm, local, "local")
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
