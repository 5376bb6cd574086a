"""Build the run matrix from the suite and CLI overrides; everything is validated here, before any
data is loaded or anything is written."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from scfm_bench.config import DatasetEntry, MetricSuite, Suite, TaskConfig, load_suite
from scfm_bench.config.schemas import split_model_ref
from scfm_bench.config.suite import cross_check
from scfm_bench.exceptions import ConfigError
from scfm_bench.registry import ADAPTERS, TASKS
from scfm_bench.tasks import DirectTask


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
    adapters: dict[str, str] = field(default_factory=dict)  # model name in cells -> adapter key, where they differ
    skipped: list[str] = field(default_factory=list)  # what the suite holds that this run cannot use, and why

    def adapter_key(self, model: str) -> str:
        return self.adapters.get(model, model)

    def is_direct(self, cell: Cell) -> bool:
        """The cell's task is a DirectTask (it scores its own predictors), not an EmbeddingTask."""
        return issubclass(TASKS.get(self.tasks[cell.task].task), DirectTask)

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite_root": str(self.suite.root),
            "datasets": {k: v.model_dump(mode="json") for k, v in self.datasets.items()},
            "tasks": {k: v.model_dump(mode="json") for k, v in self.tasks.items()},
            "metric_suites": {t: {"name": n, **s.model_dump(mode="json")} for t, (n, s) in self.metric_suites.items()},
            "cells": [c.__dict__ for c in self.cells],
            "models": self.adapters,
            "skipped": self.skipped,
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
    """Every cell the options ask for. Tasks named with --task must run as asked (bad input: exit 2);
    tasks taken from the suite run on the datasets and with the models they can use, and the rest is
    listed in ``Plan.skipped`` with a one-line reason (a perturbation task on a file that is no screen,
    an embedding task without --label-key, an embedding model given to the perturbation task)."""
    suite = load_suite(opts.suite_dir)
    problems = cross_check(suite)
    if problems:
        raise ConfigError("The suite is inconsistent:\n  " + "\n  ".join(problems))
    for name in opts.tasks:
        suite.task(name)  # raises with "did you mean"
    task_names = opts.tasks or sorted(t for t in suite.tasks if suite.task(t).default)
    if not task_names:
        raise ConfigError(f"No tasks in {suite.root / 'tasks'}. Add a tasks/<name>.yaml or pass --task.")
    explicit = bool(opts.tasks)
    entries, dataset_refs = _dataset_entries(suite, opts)
    cli_params = parse_model_params(opts.model_params)

    configs = {t: suite.task(t) for t in task_names}
    classes = {t: TASKS.get(tc.task) for t, tc in configs.items()}
    params = {t: classes[t].Params.model_validate(tc.params) for t, tc in configs.items()}
    split = {t: _task_models(classes[t], opts.models or configs[t].models, params[t]) for t in task_names}
    for m in opts.models:  # a model no task knows is a typo, not a skip
        if not any(m in split[t][0] for t in task_names):
            raise ConfigError(_unknown_model(m, [(classes[t], params[t]) for t in task_names]))

    tasks, task_params, suites, model_params, adapters, cells, skipped = {}, {}, {}, {}, {}, [], []
    consumed: set[str] = set()  # --model-param prefixes some model of the run reads
    without: dict[tuple, list[str]] = {}  # (--model values, what they are not) -> tasks that run without them
    for tname in task_names:
        tc, task_cls = configs[tname], classes[tname]
        models, not_here = split[tname]
        if not models:
            names = ", ".join(map(repr, not_here))
            if explicit:
                raise ConfigError(f"task {tname!r}: none of the models {names} is {_model_kind(task_cls)}. "
                                  f"{_known_models(task_cls, not_here[0], params[tname])}")
            skipped.append(f"task {tname!r}: none of the models ({names}) is {_model_kind(task_cls)}")
            continue
        datasets = []
        for d in dataset_refs or tc.datasets:
            why = None if explicit else task_cls.unsupported(tname, entries[d])
            if why:
                skipped.append(f"task {tname!r} on {d!r}: {why}")
            else:
                datasets.append(d)
        if not datasets:
            continue
        if not_here:
            without.setdefault((tuple(not_here), _model_kind(task_cls)), []).append(tname)
        tasks[tname], task_params[tname] = tc, params[tname]
        ms_name = tc.metric_suite or task_cls.default_suite
        suites[tname] = (ms_name, suite.metric_suite(ms_name))
        model_params[tname], instances, read = _instances(task_cls, models, params[tname], tc.model_params, cli_params)
        consumed |= read
        for inst, key in instances.items():
            if key is None:  # a direct task's predictor (gene_function's are adapter keys too): no instance
                continue
            if adapters.setdefault(inst, key) != key:
                raise ConfigError(f"model name {inst!r} stands for both {adapters[inst]!r} and {key!r}; give them different names.")
        seeds = opts.seeds or ([env_seed] if env_seed is not None else tc.seeds)
        cells += [Cell(tname, d, inst, s) for d in datasets for inst in instances for s in seeds]
    skipped += [f"{', '.join(map(repr, ms))} in task(s) {', '.join(ts)}: not {kind}" for (ms, kind), ts in without.items()]
    if not cells:
        raise ConfigError("Nothing to run:\n  " + "\n  ".join(skipped))
    _check_cli_params(cli_params, consumed, {c.model for c in cells} | consumed)
    used = {c.dataset for c in cells}
    return Plan(suite, {d: entries[d] for d in sorted(used)}, tasks, task_params, suites, model_params, cells,
                {k: v for k, v in adapters.items() if v not in (None, k)}, skipped)


def _model_kind(task_cls) -> str:
    return f"a {task_cls.key} predictor" if issubclass(task_cls, DirectTask) else "an embedding model"


def _embedders() -> set[str]:
    return {k for k, cls in ADAPTERS.items() if hasattr(cls, "gene_embeddings")}


def _task_models(task_cls, models: list[str], params: BaseModel) -> tuple[list[str], list[str]]:
    """(models this task can run, the others)."""
    if issubclass(task_cls, DirectTask):  # its models are predictors; adapters only supply gene embeddings
        ok = [m for m in models if _known_models(task_cls, m, params) is None]
    else:
        ok = [m for m in models if split_model_ref(m)[0] in ADAPTERS]
    return ok, [m for m in models if m not in ok]


def _known_models(task_cls, model: str, params: BaseModel) -> str | None:
    """Why ``model`` is not one of the task's models (with the known ones), or None."""
    if not issubclass(task_cls, DirectTask):
        key = split_model_ref(model)[0]
        return None if key in ADAPTERS else ADAPTERS._unknown_message(key)
    try:
        task_cls.check_models([model], params, _embedders())
    except ConfigError as e:
        return str(e)
    return None


def _unknown_model(model: str, tasks: list[tuple[type, BaseModel]]) -> str:
    kinds = {issubclass(task_cls, DirectTask): _known_models(task_cls, model, params) for task_cls, params in tasks}
    return f"--model {model!r}: " + " Also: ".join(kinds[k] for k in (False, True) if k in kinds)


def _instances(task_cls, models: list[str], params: BaseModel, yaml_params: dict, cli_params: dict):
    """Validated parameters per model instance, {instance: adapter key (None for a direct task's
    predictors)}, and the parameter prefixes read.

    ``ADAPTER:NAME`` is an instance of an adapter named NAME (parameters ``NAME.KEY``), so one adapter
    can run twice; a ``name`` parameter (precomputed) renames an instance in records and reports.
    """
    out, instances, read = {}, {}, set()
    if issubclass(task_cls, DirectTask):
        for m in sorted(task_cls.adapter_embeddings(models, params)):
            out[m] = validated_params(m, m, {**yaml_params.get(m, {}), **cli_params.get(m, {})})
            read.add(m)
        return out, {m: None for m in models}, read
    for m in models:
        key, inst = split_model_ref(m)
        merged = {**yaml_params.get(inst, {}), **cli_params.get(inst, {})}
        read.add(inst)
        fields = ADAPTERS.get(key).Params.model_fields
        if "name" in fields and inst != key:
            merged.setdefault("name", inst)
        name = merged.get("name") if "name" in fields else None
        if name is not None and name != inst:
            inst = _instance_name(str(name), key, f"{m}.name")
        elif inst != key:
            inst = _instance_name(inst, key, m)
        if inst in instances:
            raise ConfigError(f"two models of the run are named {inst!r}; give each its own name (--model {key}:NAME).")
        out[inst] = validated_params(key, m, merged)
        instances[inst] = key
    return out, instances, read


def _instance_name(name: str, key: str, where: str) -> str:
    if not (name.isidentifier() and name == name.lower()):
        raise ConfigError(f"{where}: model name {name!r} must be snake_case (lower-case letters, digits, _), e.g. my_embedding.")
    if name != key and name in ADAPTERS:
        raise ConfigError(f"{where}: {name!r} is a built-in model key; name the {key} model something else, e.g. my_{name}.")
    return name


def validated_params(key: str, shown: str, merged: dict[str, Any]) -> dict[str, Any]:
    """``merged`` checked against the adapter's Params: an unknown key lists the allowed ones."""
    import difflib

    fields = ADAPTERS.get(key).Params.model_fields
    for k in merged:
        if k not in fields:
            close = difflib.get_close_matches(k, fields, n=1, cutoff=0.5)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            allowed = f"Allowed: {', '.join(sorted(fields))}." if fields else f"Model {key!r} takes no parameters."
            raise ConfigError(f"model {shown!r} has no parameter {k!r}.{hint} {allowed}")
    try:
        ADAPTERS.get(key).Params.model_validate(merged)
    except ValidationError as e:
        prefix = split_model_ref(shown)[1]
        raise ConfigError(f"model {shown!r} parameters: " + "; ".join(
            f"{'.'.join(map(str, er['loc'])) or shown}: {er['msg']}" for er in e.errors())
            + f" (this model's parameters are set with --model-param {prefix}.KEY=VALUE)") from None
    return merged


def _check_cli_params(cli_params: dict, read: set[str], in_run: set[str]) -> None:
    """A --model-param (or --checkpoint) for a model that is not in the run is a mistake, not a no-op."""
    import difflib

    for prefix in cli_params:
        if prefix in read:
            continue
        close = difflib.get_close_matches(prefix, in_run, n=1, cutoff=0.5)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"--model-param {prefix}.{next(iter(cli_params[prefix]))}=…: model {prefix!r} is not in this run.{hint} "
            f"Models in the run: {', '.join(sorted(in_run))}. Add --model {prefix}, or drop the parameter.")
