"""``scfm-bench validate``: parse and cross-check every YAML of a suite; loads no data."""

from __future__ import annotations

import typer

from scfm_bench.cli._common import Format, FormatOpt, OutOpt, SuiteDir, emit, plural


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)


def validate(suite_dir: SuiteDir = None, format: FormatOpt = Format.table, out: OutOpt = None) -> int:
    """Validate datasets.yaml, tasks/*.yaml and metrics/*.yaml (schemas and references). Exit 2 if invalid."""
    from rich.text import Text

    from scfm_bench.config import load_suite
    from scfm_bench.config.suite import cross_check
    from scfm_bench.exceptions import ConfigError

    suite = load_suite(suite_dir)
    problems = cross_check(suite)
    if problems and format is Format.table:
        raise ConfigError(f"{suite.root}: {plural(len(problems), 'problem')}:\n  " + "\n  ".join(problems))
    data = {"suite": str(suite.root), "valid": not problems, "problems": problems,
            "datasets": len(suite.catalogue.datasets), "tasks": len(suite.tasks), "metric_suites": len(suite.metric_suites)}
    emit(data, format, out, Text.assemble(("valid", "green"), (
        f": {suite.root} — {plural(data['datasets'], 'dataset')}, {plural(data['tasks'], 'task')}, "
        f"{plural(data['metric_suites'], 'metric suite')}")))
    return 2 if problems else 0
