"""Timing helpers for benchmarks: repeat a command, report the median and the ratio to a baseline."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def time_command(cmd: list[str], *, repeats: int, env: dict | None = None, cwd: Path | None = None,
                 before=None) -> list[float]:
    """Wall-clock seconds of ``cmd`` over ``repeats`` runs; ``before()`` runs untimed before each one."""
    times = []
    for _ in range(repeats):
        if before is not None:
            before()
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env={**os.environ, **(env or {})}, cwd=cwd,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return times


def report(name: str, times: list[float], baseline: list[float] | None = None, baseline_name: str = "baseline") -> dict:
    row = {"benchmark": name, "median_s": round(statistics.median(times), 3), "runs_s": [round(t, 3) for t in times]}
    if baseline:
        row[f"ratio_to_{baseline_name}"] = round(statistics.median(times) / statistics.median(baseline), 2)
    print(json.dumps(row), file=sys.stdout, flush=True)
    return row


def scfm_bench_cmd() -> list[str]:
    return [sys.executable, "-m", "scfm_bench"]
