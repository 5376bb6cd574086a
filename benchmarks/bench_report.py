"""Report generation for 100k synthetic records (20 models x 10 datasets x 5 seeds x 100 metrics).

Times build_report + Markdown + JSON (median of repeats) and peak Python memory (tracemalloc), with
the plain leaderboard (build_leaderboard) on the same records as the in-run baseline. Goal: < 10 s.
Run: python benchmarks/bench_report.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import report

from scfm_bench.leaderboard import build_leaderboard, build_report, to_json, to_markdown
from scfm_bench.records import MetricResult


def synthetic_records(models: int = 20, datasets: int = 10, seeds: int = 5, metrics: int = 100) -> list[MetricResult]:
    rng = random.Random(0)
    kinds = ["random", "shuffled", "label_onehot", "pca", "hvg"] + [f"model_{i}" for i in range(models - 5)]
    return [
        MetricResult(run_id="bench", task="integration", dataset=f"ds{d}", model=m, seed=s, metric=f"m{k}",
                     value=rng.random(), family="bio", params={"primary": "m0", "n_cells": 1000},
                     created_at="2025-01-01T00:00:00+00:00")
        for d in range(datasets) for m in kinds for s in range(seeds) for k in range(metrics)
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    records = synthetic_records()
    kinds = {"random": "control", "shuffled": "control", "label_onehot": "control", "pca": "baseline", "hvg": "baseline"}

    def timed(fn) -> list[float]:
        out = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
        return out

    def full():
        r = build_report(records, kinds=kinds)
        to_markdown(r)
        to_json(r)

    base = timed(lambda: build_leaderboard(records))
    row = report(f"report_{len(records)}_records", timed(full), base, "build_leaderboard")
    tracemalloc.start()
    full()
    print({"benchmark": row["benchmark"], "peak_python_mb": round(tracemalloc.get_traced_memory()[1] / 2**20, 1)})


if __name__ == "__main__":
    main()
