"""`scfm-bench --help` and `scfm-bench list models` start-up time (goal < 1 s), against bare `python -c pass`.

Run: .venv/bin/python benchmarks/bench_startup.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import sys

from _util import report, scfm_bench_cmd, time_command


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    n = ap.parse_args().repeats
    base = time_command([sys.executable, "-c", "pass"], repeats=n)
    report("python -c pass (baseline)", base)
    report("scfm-bench --help", time_command([*scfm_bench_cmd(), "--help"], repeats=n), base, "python")
    report("scfm-bench list models", time_command([*scfm_bench_cmd(), "list", "models"], repeats=n), base, "python")


if __name__ == "__main__":
    main()
