"""The run as jobs: typed, serialisable job specs and the one job function every executor calls.

An **embedding** job computes one shared embedding (dataset, model, parameters, seed) into the
embedding cache; an **evaluation** job scores that embedding's cells from the cache and writes their
records; a **direct** job runs one direct task (e.g. perturbation) for one (dataset, seed). A job
rebuilds the plan from the same options, validates its own data in full, and writes one records
file per cell into the run folder (scfm_bench.records.RunWriter): no two jobs share a file.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from scfm_bench.runner.plan import Cell, Plan, RunOptions

log = logging.getLogger(__name__)

JobKind = Literal["embedding", "evaluation", "direct"]


@dataclass(frozen=True)
class JobSpec:
    kind: JobKind
    cells: tuple[Cell, ...]
    options: dict[str, Any]  # RunOptions fields (JSON-able): the job rebuilds the same plan
    settings: dict[str, Any]  # Settings dump
    output_dir: str
    run_id: str
    attempt: int = 1
    retry_reason: str | None = None
    gpus: int = 0  # what the job needs, from the adapters' InputSpec (the Slurm executor's defaults)
    mem_gb: int = 8
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        c = self.cells[0]
        who = c.model if self.kind != "direct" else f"{len(self.cells)} predictors"
        return f"{self.kind}:{c.task if self.kind != 'embedding' else '-'}:{c.dataset}:{who}:seed{c.seed}"

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "name": self.name}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "JobSpec":
        d = {k: v for k, v in d.items() if k != "name"}
        return cls(**{**d, "cells": tuple(Cell(**c) if isinstance(c, dict) else Cell(*c) for c in d["cells"])})


def options_dict(opts: RunOptions) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(opts).items()}


def make_jobs(plan: Plan, opts: RunOptions, settings, *, output_dir: Path, run_id: str,
              cells: list[Cell] | None = None) -> tuple[list[JobSpec], list[JobSpec]]:
    """(first stage, second stage): embedding and direct jobs, then the evaluation jobs that read
    the embeddings (submitted with an afterok dependency on the first stage)."""
    from scfm_bench.runner.local import embedding_groups

    cells = plan.cells if cells is None else cells
    common = dict(options=options_dict(opts), settings=settings.model_dump(mode="json"), output_dir=str(output_dir),
                  run_id=run_id)
    embedding = [c for c in cells if not plan.is_direct(c)]
    direct: dict[tuple, list[Cell]] = {}
    for c in cells:
        if plan.is_direct(c):
            direct.setdefault((c.task, c.dataset, c.seed), []).append(c)
    groups = embedding_groups(plan, embedding)
    first = [JobSpec("embedding", tuple(g), **common, **resources(plan, g)) for g in groups]
    first += [JobSpec("direct", tuple(g), **common, **resources(plan, g)) for g in direct.values()]
    second = [JobSpec("evaluation", tuple(g), **common, **resources(plan, g)) for g in groups]
    return first, second


def resources(plan: Plan, cells: list[Cell]) -> dict[str, int]:
    """A job's GPUs and memory from its adapters' InputSpec. Embedding cells share one adapter; a
    direct job loads the adapters whose gene embeddings it reads (a table lookup: no GPU) and needs
    the largest memory of them."""
    from scfm_bench.adapters import InputSpec
    from scfm_bench.registry import ADAPTERS, TASKS

    c = cells[0]
    if not plan.is_direct(c):
        spec = ADAPTERS.get(plan.adapter_key(c.model)).input_spec
        return {"gpus": int(spec.needs_gpu), "mem_gb": spec.mem_gb}
    task = TASKS.get(plan.tasks[c.task].task)
    used = task.adapter_embeddings([x.model for x in cells], plan.task_params[c.task])
    return {"gpus": 0, "mem_gb": max([InputSpec().mem_gb, *(ADAPTERS.get(a).input_spec.mem_gb for a in used)])}


def run_job(spec: JobSpec) -> dict[str, Any]:
    """The job function (pure: everything it needs is in ``spec``). Cell problems become records;
    bad input found by the full validation is returned as {"error": ...} (not retried)."""
    from scfm_bench.embed import EmbeddingCache, resolve_device
    from scfm_bench.exceptions import ScfmBenchError
    from scfm_bench.ontology import configure_cache
    from scfm_bench.progress import RunProgress, set_enabled
    from scfm_bench.records import RunWriter
    from scfm_bench.runner.local import RunSummary, _Context, _load_and_validate, run_cells
    from scfm_bench.runner.plan import build_plan
    from scfm_bench.settings import Settings

    set_enabled(False)  # batch jobs log; they have no terminal
    opts = RunOptions(**{k: (Path(v) if k == "suite_dir" and v else v) for k, v in spec.options.items()})
    settings = Settings(**spec.settings)
    try:
        plan = build_plan(opts, env_seed=settings.seed)
        cells = [c for c in plan.cells if c in set(spec.cells)]
        sub = dataclasses.replace(plan, cells=cells, datasets={d: plan.datasets[d] for d in {c.dataset for c in cells}})
        device = resolve_device(settings.device)
        loaded, prepared = _load_and_validate(sub, settings)
    except ScfmBenchError as exc:
        log.error("%s: %s", spec.name, exc)
        return {"job": spec.name, "error": str(exc)}
    configure_cache(settings.cache_dir / "ontology")
    writer = RunWriter(Path(spec.output_dir), spec.run_id)
    summary = RunSummary(spec.run_id, writer.dir)
    extra = {"job": {"kind": spec.kind, "attempt": spec.attempt, "retry_reason": spec.retry_reason}} if spec.attempt > 1 else {}
    ctx = _Context(sub, settings, device, EmbeddingCache(settings.embeddings_dir), writer, summary,
                   RunProgress(lambda n=1: None, lambda text: None, len(cells)), extra)
    run_cells(ctx, loaded, prepared, cells, embed_only=spec.kind == "embedding", preprocessed_cache=settings.cache_dir)
    return {"job": spec.name, "records": len(summary.records), "failed": sum(r.status == "failed" for r in summary.records)}
