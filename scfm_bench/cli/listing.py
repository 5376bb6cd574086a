"""``scfm-bench list models|tasks|metrics|datasets``."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from scfm_bench.cli._common import Format, FormatOpt, OutOpt, SuiteDir, emit


class What(str, Enum):
    models = "models"
    tasks = "tasks"
    metrics = "metrics"
    datasets = "datasets"


def register(app: typer.Typer) -> None:
    app.command("list")(list_items)


def rows(what: What, suite_dir=None) -> list[dict]:
    from scfm_bench.registry import ADAPTERS, METRICS, TASKS

    if what is What.models:
        from scfm_bench.cli._common import settings

        model_dir = settings().model_dir
        out = []
        for k, a in ADAPTERS.items():
            scfm = hasattr(a, "checkpoint_status")  # foundation models: weights live on the user's disk
            inst = a({}, model_dir=model_dir) if scfm else None
            out.append({"key": k, "name": a.display_name, "kind": a.kind, "version": a.version, "licence": a.licence,
                        "checkpoint": inst.checkpoint_status() if scfm else "-", "variant": inst.variant() if scfm else "-",
                        "needs": ", ".join(n for n, v in a.input_spec.model_dump().items() if v is True) or "-",
                        "description": a.description})
        return out
    if what is What.tasks:
        from scfm_bench.config import load_suite

        suite = load_suite(suite_dir)
        return [{"name": name, "task": tc.task, "metric_suite": tc.metric_suite or TASKS.get(tc.task).default_suite,
                 "datasets": ", ".join(tc.datasets), "models": ", ".join(tc.models), "seeds": ", ".join(map(str, tc.seeds)),
                 "description": tc.description} for name, tc in sorted(suite.tasks.items())]
    if what is What.metrics:
        return [{"key": k, "label": m.spec.label, "family": m.spec.family,
                 "direction": "higher" if m.spec.higher_is_better else "lower", "range": list(m.spec.range),
                 "inputs": ", ".join(m.spec.inputs), "outputs": ", ".join(m.spec.outputs or ()) or "-",
                 "options": ", ".join(f"{n}={v!r}" for n, v in m.options().items()) or "-"} for k, m in METRICS.items()]
    from scfm_bench.config import load_suite

    suite = load_suite(suite_dir)
    return [{"name": n, "source": e.source, "organism": e.organism, "label": e.fields.label or "-",
             "batch": e.fields.batch or "-", "licence": e.licence or "-", "simulated": e.simulated or "no",
             "description": e.description} for n, e in sorted(suite.catalogue.datasets.items())]


def list_items(
    what: Annotated[str, typer.Argument(help="models, tasks, metrics or datasets (or model, task, metric, dataset).",
                                        show_default=False)],
    format: FormatOpt = Format.table,
    out: OutOpt = None,
    suite_dir: SuiteDir = None,
) -> int:
    """List registered models, tasks, metrics, or catalogue datasets."""
    from scfm_bench.exceptions import ConfigError

    kind = next((w for w in What if what in (w.value, w.value[:-1])), None)
    if kind is None:
        raise ConfigError(f"scfm-bench list {what!r}: list one of {', '.join(w.value for w in What)}.")
    items = rows(kind, suite_dir)
    from rich.table import Table

    table = Table(title=kind.value, show_lines=False)
    for col in items[0] if items else []:
        table.add_column(col, overflow="fold", max_width=60 if col == "description" else None)
    for item in items:
        table.add_row(*(str(v) for v in item.values()))
    emit(items, format, out, table)
    return 0
