"""Cold and warm `scfm-bench run` on the default suite (goal: cold < 3 min on 2 cores).

Cold: empty cache (the default dataset is built, every embedding computed, numba/jax compile in a
fresh process). Warm: the same run again with the cache kept (embeddings reused; metrics recomputed).
The ratio reported is warm / cold, both measured in this run.

Run: .venv/bin/python benchmarks/bench_default_run.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from _util import report, scfm_bench_cmd, time_command


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    n = ap.parse_args().repeats
    work = Path(tempfile.mkdtemp(prefix="scfm-bench-bench-"))
    cache, out = work / "cache", work / "results"
    env = {"SCFM_BENCH_CACHE_DIR": str(cache)}
    cmd = [*scfm_bench_cmd(), "run", "--quiet", "--output-dir", str(out)]

    def clear():
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)

    try:
        cold = time_command(cmd, repeats=n, env=env, cwd=work, before=clear)
        report("scfm-bench run, cold cache", cold)
        warm = time_command(cmd, repeats=n, env=env, cwd=work)
        report("scfm-bench run, warm cache", warm, cold, "cold")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
