"""Leaderboards and reports: pure functions from MetricResult records to tables, and their exporters."""

from scfm_bench.leaderboard.build import Cell, Column, Leaderboard, Table, build_leaderboard
from scfm_bench.leaderboard.formats import to_csv, to_json, to_latex, to_markdown
from scfm_bench.leaderboard.report import Comparison, Report, build_report
from scfm_bench.leaderboard.terminal import render_terminal

__all__ = [
    "Cell",
    "Column",
    "Comparison",
    "Leaderboard",
    "Report",
    "Table",
    "build_leaderboard",
    "build_report",
    "render_terminal",
    "to_csv",
    "to_json",
    "to_latex",
    "to_markdown",
]
