"""The local process pool: the same jobs as on Slurm, in spawned processes, give the in-process records."""

from __future__ import annotations

from collections import Counter

from quick_suite import cli

from scfm_bench.records import latest_per_key, read_manifests, read_records


def values(out) -> dict:
    return {(*r.cell, r.metric): (r.status, r.value) for r in latest_per_key(read_records(out))}


def test_pool_records_equal_in_process_records(suite, tmp_path):
    local = cli("run", "--suite-dir", suite, "-o", tmp_path / "local")
    assert local.returncode == 0, local.stderr
    # fresh cache: the pool's workers compute the embeddings themselves
    pool = cli("run", "--suite-dir", suite, "-o", tmp_path / "pool", "--max-parallel", "2",
               env_extra={"SCFM_BENCH_CACHE_DIR": str(tmp_path / "pool-cache")})
    assert pool.returncode == 0, pool.stderr
    assert values(tmp_path / "pool") == values(tmp_path / "local")  # value for value
    recs = read_records(tmp_path / "pool")
    assert len({r.cell for r in recs}) == 4 and max(Counter((*r.cell, r.metric) for r in recs).values()) == 1
    assert {r.timings.embedding_cached for r in recs} == {True}  # scored by evaluation jobs from the embedding jobs' cache
    (run_dir,) = (tmp_path / "pool" / "runs").iterdir()
    assert len(list((run_dir / "records").glob("*.jsonl"))) == 4 and len(read_manifests(tmp_path / "pool")) == 1
    again = cli("run", "--suite-dir", suite, "-o", tmp_path / "pool", "--executor", "local-pool", "--resume",
                env_extra={"SCFM_BENCH_CACHE_DIR": str(tmp_path / "pool-cache")})
    assert again.returncode == 0 and "nothing left to run" in again.stderr, again.stderr
