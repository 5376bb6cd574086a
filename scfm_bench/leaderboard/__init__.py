"""Leaderboards: pure functions from MetricResult records to tables, and their exporters."""

from scfm_bench.leaderboard.build import Cell, Column, Leaderboard, Table, build_leaderboard
from scfm_bench.leaderboard.export import to_csv, to_json, to_markdown
from scfm_bench.leaderboard.terminal import render_terminal

__all__ = [
    "Cell",
    "Column",
    "Leaderboard",
    "Table",
    "build_leaderboard",
    "render_terminal",
    "to_csv",
    "to_json",
    "to_markdown",
]
