"""``scfm-bench validate``: parse and cross-check every YAML of a suite; loads no data."""

from __future__ import annotations

import typer

from scfm_bench.cli._common import SuiteDir, out_console


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)


def validate(suite_dir: SuiteDir = None) -> int:
    """Validate datasets.yaml, tasks/*.yaml and metrics/*.yaml (schemas and references). Exit 2 if invalid."""
    from scfm_bench.config import load_suite
    from scfm_bench.config.suite import cross_check
    from scfm_bench.exceptions import ConfigError

    suite = load_suite(suite_dir)
    problems = cross_check(suite)
    if problems:
        raise ConfigError(f"{suite.root}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    out_console().print(
        f"[green]valid[/]: {suite.root} — {len(suite.catalogue.datasets)} datasets, {len(suite.tasks)} tasks, "
        f"{len(suite.metric_suites)} metric suites", highlight=False)
    return 0
