"""Compose dataset x model x task x seed into cells, validate everything, run locally, write records."""

from scfm_bench.runner.plan import Cell, Plan, RunOptions, build_plan
from scfm_bench.runner.local import RunSummary, execute

__all__ = ["Cell", "Plan", "RunOptions", "RunSummary", "build_plan", "execute"]
