"""Load a suite directory (datasets.yaml, tasks/*.yaml, metrics/*.yaml), validate, and cross-check it.

Errors point to the file and line: YAML is composed to nodes first so a pydantic error location can
be mapped back to where the offending key sits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from scfm_bench.config.schemas import Catalogue, MetricSuite, TaskConfig, split_model_ref
from scfm_bench.exceptions import ConfigError, ScfmBenchError

M = TypeVar("M", bound=BaseModel)


def packaged_suite_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "suite"


def resolve_suite_dir(suite_dir: Path | None) -> Path:
    """--suite-dir, else the current directory if it holds datasets.yaml, else the packaged default."""
    if suite_dir is not None:
        if not (Path(suite_dir) / "datasets.yaml").is_file():
            raise ConfigError(f"--suite-dir {suite_dir}: no datasets.yaml there. A suite folder holds datasets.yaml, tasks/ and metrics/.")
        return Path(suite_dir)
    if Path("datasets.yaml").is_file():
        return Path(".")
    return packaged_suite_dir()


def _line_of(node: yaml.Node, loc: tuple) -> int:
    """Best line (1-based) for a pydantic error location inside a composed YAML node."""
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == str(part):
                    line, node = k.start_mark.line + 1, v
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def load_yaml_model(path: Path, model: type[M]) -> M:
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror}).") from None
    try:
        node = yaml.compose(text)
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(e, 'problem', e)}).") from None
    if node is None or data is None:
        raise ConfigError(f"{path}: the file is empty.")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        msgs = []
        for err in e.errors():
            loc = tuple(err["loc"])
            dotted = ".".join(str(p) for p in loc) or "(top level)"
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                allowed = _allowed_keys(model, loc[:-1])
                msg = f"unknown key {loc[-1]!r}" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
            msgs.append(f"{path}:{_line_of(node, loc)}: {dotted}: {msg}")
        raise ConfigError("Invalid configuration:\n  " + "\n  ".join(msgs)) from None


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the (nested) model at ``loc``; empty when it cannot be resolved."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            continue
        f = current.model_fields.get(str(part))
        if f is None:
            # a dict[str, Model] value: the key is a user name, keep the value type
            continue
        ann = f.annotation
        args = getattr(ann, "__args__", ())
        nested = [a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)]
        current = nested[0] if nested else None
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []


@dataclass
class Suite:
    root: Path
    catalogue: Catalogue
    tasks: dict[str, TaskConfig] = field(default_factory=dict)
    metric_suites: dict[str, MetricSuite] = field(default_factory=dict)

    def task(self, name: str) -> TaskConfig:
        return _lookup(self.tasks, name, "task", self.root / "tasks")

    def metric_suite(self, name: str) -> MetricSuite:
        return _lookup(self.metric_suites, name, "metric suite", self.root / "metrics")

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "datasets": {k: v.model_dump(mode="json") for k, v in self.catalogue.datasets.items()},
            "tasks": {k: v.model_dump(mode="json") for k, v in self.tasks.items()},
            "metric_suites": {k: v.model_dump(mode="json") for k, v in self.metric_suites.items()},
        }


def _lookup(mapping: dict, name: str, kind: str, where: Path):
    import difflib

    if name in mapping:
        return mapping[name]
    close = difflib.get_close_matches(name, mapping, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    raise ConfigError(f"Unknown {kind} {name!r} (looked in {where}).{hint} Known: {', '.join(sorted(mapping))}.")


def load_suite(suite_dir: Path | None = None) -> Suite:
    root = resolve_suite_dir(suite_dir)
    suite = Suite(root=root, catalogue=load_yaml_model(root / "datasets.yaml", Catalogue))
    for kind, target, model in (("tasks", suite.tasks, TaskConfig), ("metrics", suite.metric_suites, MetricSuite)):
        for path in sorted((root / kind).glob("*.yaml")):
            target[path.stem] = load_yaml_model(path, model)
    return suite


def cross_check(suite: Suite) -> list[str]:
    """Check references between files and against the registries; returns problems (empty = valid)."""
    from scfm_bench.registry import ADAPTERS, METRICS, TASKS
    from scfm_bench.tasks import DirectTask, EmbeddingTask

    problems: list[str] = []
    for name, ms in suite.metric_suites.items():
        for m in ms.metrics:
            if m.metric not in METRICS:
                problems.append(f"metrics/{name}.yaml: metric {m.id!r}: {METRICS._unknown_message(m.metric)}")
                continue
            spec = METRICS.get(m.metric).spec
            try:
                spec.check_entry(m)
            except (ValueError, ScfmBenchError) as e:
                problems.append(f"metrics/{name}.yaml: metric {m.id!r}: {e}")
    for name, tc in suite.tasks.items():
        where = f"tasks/{name}.yaml"
        if tc.task not in TASKS:
            problems.append(f"{where}: {TASKS._unknown_message(tc.task)}")
            continue
        task_cls = TASKS.get(tc.task)
        if issubclass(task_cls, EmbeddingTask) == issubclass(task_cls, DirectTask):
            problems.append(f"{where}: task class {task_cls.__name__} ({tc.task!r}) must subclass exactly one of "
                            f"EmbeddingTask and DirectTask (scfm_bench.tasks).")
            continue
        try:
            task_cls.Params.model_validate(tc.params)
        except ValidationError as e:
            problems.extend(f"{where}: params.{'.'.join(map(str, er['loc']))}: {er['msg']}" for er in e.errors())
        ms_name = tc.metric_suite or task_cls.default_suite
        if ms_name not in suite.metric_suites:
            problems.append(f"{where}: metric_suite {ms_name!r} not found in metrics/ (have: {', '.join(sorted(suite.metric_suites))}).")
        for d in tc.datasets:
            if d not in suite.catalogue.datasets:
                problems.append(f"{where}: dataset {d!r} is not in datasets.yaml.")
        instances = {}  # model_params keys: adapter keys, or NAME of an ADAPTER:NAME model
        for m in [] if issubclass(task_cls, DirectTask) else tc.models:  # direct tasks check their predictors in the plan
            key, name = split_model_ref(m)
            if key not in ADAPTERS:
                problems.append(f"{where}: {ADAPTERS._unknown_message(key)}")
            instances[name] = key
        for m, params in tc.model_params.items():
            key = instances.get(m, m)
            if key not in ADAPTERS:
                problems.append(f"{where}: model_params: {ADAPTERS._unknown_message(m)}")
                continue
            try:
                ADAPTERS.get(key).Params.model_validate(params)
            except ValidationError as e:
                problems.extend(f"{where}: model_params.{m}.{'.'.join(map(str, er['loc']))}: {er['msg']}" for er in e.errors())
    return problems
