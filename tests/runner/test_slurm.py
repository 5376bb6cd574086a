"""The Slurm executor on a real one-node Slurm cluster (started here, stopped by PID afterwards).
Skipped only where Slurm cannot be installed or started, with the reason; fails instead when CI=true."""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter

import pytest
from quick_suite import REPO, cli, quick_suite
from slurm_cluster import LocalSlurm

from scfm_bench.records import latest_per_key, read_records

pytestmark = pytest.mark.slow

# a job that dies once: the first evaluation job is SIGKILLed as it starts (as by the OOM killer)
_FAIL_ONCE = """
import os
if os.environ.get("SLURM_JOB_ID") and os.environ.get("SCFM_TEST_FAIL_ONCE"):
    import signal
    from pathlib import Path
    import scfm_bench.runner.jobs as jobs

    run_job, marker = jobs.run_job, Path(os.environ["SCFM_TEST_FAIL_ONCE"])

    def dying(spec):
        if spec.kind == "evaluation":
            try:
                marker.open("x").close()
            except FileExistsError:
                return run_job(spec)
            os.kill(os.getpid(), signal.SIGKILL)
        return run_job(spec)

    jobs.run_job = dying
"""


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    why = cluster.start()
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Slurm could not be started on CI: {why}")
        pytest.skip(f"Slurm could not be started here: {why}")
    try:
        yield cluster
    finally:
        cluster.stop()


def values(out) -> dict:
    return {(*r.cell, r.metric): (r.status, r.value) for r in latest_per_key(read_records(out))}


def test_slurm_matrix_with_a_retry_equals_local(slurm, tmp_path):
    suite = quick_suite(tmp_path / "suite", seeds=(0, 1))
    assert cli("run", "--suite-dir", suite, "-o", tmp_path / "local").returncode == 0
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_FAIL_ONCE)
    env = {"PYTHONPATH": f"{hook}{os.pathsep}{REPO}", "SCFM_TEST_FAIL_ONCE": str(tmp_path / "failed-once"),
           "SCFM_BENCH_CACHE_DIR": str(tmp_path / "slurm-cache")}  # embeddings computed anew by the jobs
    r = cli("run", "--suite-dir", suite, "-o", tmp_path / "slurm", "--executor", "slurm", env_extra=env)
    assert r.returncode == 0, r.stderr
    assert "resubmitted as" in r.stderr and (tmp_path / "failed-once").exists()
    assert values(tmp_path / "slurm") == values(tmp_path / "local")  # value for value
    recs = read_records(tmp_path / "slurm")
    assert max(Counter((*x.cell, x.metric) for x in recs).values()) == 1
    retried = {x.cell for x in recs if x.params.get("job", {}).get("attempt") == 2}
    assert len(retried) == 1 and all("died without a result" in x.params["job"]["retry_reason"]
                                     for x in recs if x.cell in retried)


def test_scancel_mid_run_then_resume(slurm, tmp_path):
    suite = quick_suite(tmp_path / "suite", seeds=(0, 1, 2))
    out = tmp_path / "out"
    r = cli("run", "--suite-dir", suite, "-o", out, "--executor", "slurm", "--detach")
    assert r.returncode == 0 and "submitted 12 Slurm jobs" in r.stderr, r.stderr
    run_dir = next((out / "runs").iterdir())
    deadline = time.time() + 400
    while not list(run_dir.glob("records/*.jsonl")) and time.time() < deadline:
        time.sleep(0.5)
    status = cli("status", run_dir)
    assert status.returncode == 0 and "COMPLETED" in status.stdout
    subprocess.run(["scancel", "--me"], check=True)  # cancels what is still queued or running
    while subprocess.run(["squeue", "-h", "--me"], capture_output=True, text=True).stdout.strip():
        time.sleep(0.5)
    partial = cli("collect", run_dir)
    assert partial.returncode == 1 and "LOST" in partial.stderr
    n_partial = len({x.cell for x in read_records(run_dir)})
    assert 0 < n_partial < 6
    r = cli("run", "--suite-dir", suite, "-o", out, "--executor", "slurm", "--resume")
    assert r.returncode == 0, r.stderr
    recs = read_records(out)
    assert len({x.cell for x in recs}) == 6 and max(Counter((*x.cell, x.metric) for x in recs).values()) == 1
    assert all(x.status == "ok" for x in recs)
    done = cli("collect", run_dir)  # the first run stays incomplete: its lost jobs are named
    assert done.returncode == 1
