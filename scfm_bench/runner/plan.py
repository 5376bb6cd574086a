"""Build the run matrix from the suite and CLI overrides; everything is validated here, before any
data is loaded or anything is written."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from scfm_bench.config import DatasetEntry, MetricSuite, Suite, TaskConfig, load_suite
from scfm_bench.config.suite import cross_check
from scfm_bench.exceptions import ConfigError
from scfm_bench.registry import ADAPTERS, TASKS


@dataclass
class RunOptions:
    suite_dir: Path | None = None
    tasks: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=list)  # catalogue names or .h5ad paths
    models: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    model_params: list[str] = field(default_factory=list)  # "MODEL.KEY=VALUE"
    label_key: str | None = None
    batch_key: str | None = None
    ontology_key: str | None = None
    counts_layer: str | None = None
    round_counts: bool = False


@dataclass(frozen=True)
class Cell:
    task: str
    dataset: str
    model: str
    seed: int


@dataclass
class Plan:
    suite: Suite
    datasets: dict[str, DatasetEntry]
    tasks: dict[str, TaskConfig]
    task_params: dict[str, BaseModel]
    metric_suites: dict[str, tuple[str, MetricSuite]]  # task name -> (suite name, suite)
    model_params: dict[str, dict[str, dict[str, Any]]]  # task -> model -> params
    cells: list[Cell]

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite_root": str(self.suite.root),
            "datasets": {k: v.model_dump(mode="json") for k, v in self.datasets.items()},
            "tasks": {k: v.model_dump(mode="json") for k, v in self.tasks.items()},
            "metric_suites": {t: {"name": n, **s.model_dump(mode="json")} for t, (n, s) in self.metric_suites.items()},
            "cells": [c.__dict__ for c in self.cells],
        }


def parse_model_params(items: list[str]) -> dict[str, dict[str, Any]]:
    """``["precomputed.obsm_key=X_mine", "scvi.max_epochs_cap=5"]`` -> nested dict (values parsed as YAML scalars)."""
    import yaml

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        model, dot, name = key.partition(".")
        if not (sep and dot and model and name):
            raise ConfigError(f"--model-param {item!r}: expected MODEL.KEY=VALUE, e.g. precomputed.obsm_key=X_mine.")
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        out.setdefault(model, {})[name] = value
    return out


def _dataset_entries(suite: Suite, opts: RunOptions) -> tuple[dict[str, DatasetEntry], list[str]]:
    """Catalogue entries plus --dataset paths turned into entries (--*-key flags override field maps),
    and the dataset names the --dataset options refer to."""
    from scfm_bench.data import entry_from_h5ad

    entries = dict(suite.catalogue.datasets)
    names: list[str] = []
    overrides = {k: v for k, v in {"label": opts.label_key, "batch": opts.batch_key, "ontology_id": opts.ontology_key,
                                   "counts_layer": opts.counts_layer,
                                   "non_integer_counts": "round" if opts.round_counts else None}.items() if v is not None}
    for ref in opts.datasets:
        if Path(ref).suffix:
            if not Path(ref).is_file():
                raise ConfigError(f"--dataset {ref}: no such file. Give a dataset name from datasets.yaml or a path to an .h5ad.")
            name, entry = entry_from_h5ad(Path(ref), label_key=opts.label_key, batch_key=opts.batch_key,
                                          ontology_key=opts.ontology_key, counts_layer=opts.counts_layer or "X")
            entries[name] = entry.model_copy(update={"fields": entry.fields.model_copy(update=overrides)})
            names.append(name)
            continue
        if ref not in entries:
            import difflib

            close = difflib.get_close_matches(ref, entries, n=3, cutoff=0.5)
            hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise ConfigError(f"--dataset {ref!r} is neither a dataset in {suite.root / 'datasets.yaml'} nor an .h5ad path.{hint} "
                              f"Known: {', '.join(sorted(entries))}.")
        if overrides:
            e = entries[ref]
            entries[ref] = e.model_copy(update={"fields": e.fields.model_copy(update=overrides)})
        names.append(ref)
    return entries, names


def build_plan(opts: RunOptions, *, env_seed: int | None = None) -> Plan:
    suite = load_suite(opts.suite_dir)
    problems = cross_check(suite)
    if problems:
        raise ConfigError("The suite is inconsistent:\n  " + "\n  ".join(problems))
    for name in opts.tasks:
        suite.task(name)  # raises with "did you mean"
    direct = any(not TASKS.get(suite.task(t).task).uses_embedding for t in (opts.tasks or suite.tasks))
    for m in opts.models if not direct else []:  # direct tasks' predictors are checked per task below
        ADAPTERS.get(m)
    task_names = opts.tasks or sorted(suite.tasks)
    if not task_names:
        raise ConfigError(f"No tasks in {suite.root / 'tasks'}. Add a tasks/<name>.yaml or pass --task.")
    entries, dataset_refs = _dataset_entries(suite, opts)
    cli_params = parse_model_params(opts.model_params)
    for m in cli_params:
        if m not in ADAPTERS:
            raise ConfigError(f"--model-param: {ADAPTERS._unknown_message(m)}")

    tasks, task_params, suites, model_params, cells = {}, {}, {}, {}, []
    for tname in task_names:
        tc = suite.task(tname)
        task_cls = TASKS.get(tc.task)
        tasks[tname] = tc
        task_params[tname] = task_cls.Params.model_validate(tc.params)
        ms_name = tc.metric_suite or task_cls.default_suite
        suites[tname] = (ms_name, suite.metric_suite(ms_name))
        models = opts.models or tc.models
        model_params[tname] = {}
        adapters = models
        if not task_cls.uses_embedding:  # its models are predictors; adapters only supply gene embeddings
            embedders = {k for k, cls in ADAPTERS.items() if hasattr(cls, "gene_embeddings")}
            task_cls.check_models(models, task_params[tname], embedders)
            adapters = sorted(task_cls.adapter_embeddings(models, task_params[tname]))
        for m in adapters:
            merged = {**tc.model_params.get(m, {}), **cli_params.get(m, {})}
            try:
                ADAPTERS.get(m).Params.model_validate(merged)
            except ValidationError as e:
                raise ConfigError(f"model {m!r} parameters: " + "; ".join(
                    f"{'.'.join(map(str, er['loc'])) or m}: {er['msg']}" for er in e.errors())) from None
            model_params[tname][m] = merged
        seeds = opts.seeds or ([env_seed] if env_seed is not None else tc.seeds)
        for d in dataset_refs or tc.datasets:
            cells += [Cell(tname, d, m, s) for m in models for s in seeds]
    used = {c.dataset for c in cells}
    return Plan(suite, {d: entries[d] for d in sorted(used)}, tasks, task_params, suites, model_params, cells)
