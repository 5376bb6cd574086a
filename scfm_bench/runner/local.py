"""Run a plan in this process. Order: validate every dataset and model first (bad input aborts with
nothing written), then per dataset preprocess once, per (model, seed) embed once (cached), per task
score; each cell's records are appended as soon as they exist."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scfm_bench import __version__
from scfm_bench.adapters import Adapter
from scfm_bench.embed import EmbeddingCache, adapter_cache_key, embed, primary_device, resolve_device
from scfm_bench.exceptions import CellError
from scfm_bench.metrics import NeighborGraph, Outcome
from scfm_bench.records import MetricResult, RunManifest, RunWriter, Timings, new_run_id, read_records
from scfm_bench.registry import ADAPTERS, TASKS
from scfm_bench.runner.plan import Cell, Plan
from scfm_bench.runner.provenance import git_commit, machine_info, package_versions
from scfm_bench.settings import Settings
from scfm_bench.tasks import TaskData

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    run_id: str
    run_dir: Path
    records: list[MetricResult] = field(default_factory=list)
    resumed: list[Cell] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if any(r.status == "failed" for r in self.records) else 0


def _adapter(plan: Plan, cell: Cell, settings: Settings) -> Adapter:
    cls = ADAPTERS.get(plan.adapter_key(cell.model))
    return cls(plan.model_params[cell.task][cell.model], seed=cell.seed, model_dir=settings.model_dir)


def _load_and_validate(plan: Plan, settings: Settings) -> tuple[dict[str, Any], dict[tuple[str, str], Any]]:
    """Load every dataset the plan uses, check fields each task needs and each model's own checks;
    also returns what direct tasks prepared from each dataset, per (task, dataset)."""
    from scfm_bench.data import load_dataset, validate_fields

    loaded, prepared = {}, {}
    for name, entry in plan.datasets.items():
        cells = [c for c in plan.cells if c.dataset == name and _uses_embedding(plan, c)]
        task_classes = [TASKS.get(plan.tasks[c.task].task) for c in cells]
        adapters = {c.model: _adapter(plan, c, settings) for c in cells}
        ds = load_dataset(name, entry, settings, suite_root=plan.suite.root)
        validate_fields(ds, need_label=any(t.needs_label for t in task_classes),
                        need_batch=any(t.needs_batch or adapters[c.model].input_spec.needs_batch
                                       for t, c in zip(task_classes, cells)))
        for a in adapters.values():
            a.check(ds.adata)
        # direct tasks validate the data themselves (bad input aborts before writing); loaded once per task
        for t in sorted({c.task for c in plan.cells if c.dataset == name and not _uses_embedding(plan, c)}):
            prepared[(t, name)] = TASKS.get(plan.tasks[t].task).load(ds.adata, name=name, entry=entry, params=plan.task_params[t])
        loaded[name] = ds
    return loaded, prepared


def _uses_embedding(plan: Plan, cell: Cell) -> bool:
    return TASKS.get(plan.tasks[cell.task].task).uses_embedding


def _resumable(plan: Plan, output_dir: Path) -> set[Cell]:
    """Cells whose latest records are all ok in earlier runs of this output folder."""
    if not (output_dir / "runs").is_dir():
        return set()
    try:
        old = read_records(output_dir)
    except Exception:  # an unreadable old run simply is not resumed
        return set()
    status: dict[tuple, set[str]] = {}
    for r in old:
        status.setdefault(r.cell, set()).add(r.status)
    return {c for c in plan.cells if status.get((c.task, c.dataset, c.model, c.seed)) == {"ok"}}


def execute(plan: Plan, settings: Settings, *, output_dir: Path, resume: bool = False,
            command_line: list[str] | None = None) -> RunSummary:
    from scfm_bench.data import preprocess
    from scfm_bench.ontology import configure_cache

    device = resolve_device(settings.device)
    loaded, prepared = _load_and_validate(plan, settings)  # raises ScfmBenchError before anything is written
    cache = EmbeddingCache(settings.embeddings_dir)
    configure_cache(settings.cache_dir / "ontology")  # ontology-side RWR/DCA vectors, computed once per CL version
    done = _resumable(plan, output_dir) if resume else set()

    run_id = new_run_id()
    writer = RunWriter(output_dir, run_id)
    summary = RunSummary(run_id, writer.dir)
    writer.write_manifest(RunManifest(
        run_id=run_id, package_version=__version__, git_commit=git_commit(), command_line=command_line or sys.argv,
        machine=machine_info(device), packages=package_versions(), suite=plan.to_dict(),
        settings=settings.model_dump(mode="json"),
    ))

    for dname, ds in loaded.items():
        direct = [c for c in plan.cells if c.dataset == dname and not _uses_embedding(plan, c) and c not in done]
        _run_direct(plan, direct, ds, prepared, device, settings, writer, summary)
        dcells = [c for c in plan.cells if c.dataset == dname and _uses_embedding(plan, c)]
        if not dcells:
            continue
        entry = plan.datasets[dname]
        fields = entry.fields
        adata = preprocess(ds.adata, seed=0)
        adata.uns["scfm_bench_fields"] = {"label": fields.label, "batch": fields.batch}
        data = TaskData(
            adata=adata,
            labels=adata.obs[fields.label].astype(str).to_numpy() if fields.label else None,
            batch=adata.obs[fields.batch].astype(str).to_numpy() if fields.batch else None,
            ontology_ids=adata.obs[fields.ontology_id].astype(str).to_numpy() if fields.ontology_id else None,
            continuous={c: adata.obs[c].to_numpy(dtype=float) for c in fields.continuous},
        )
        # one adapter per (model, seed, parameter set): tasks sharing it share the embedding
        groups: dict[tuple, list[Cell]] = {}
        for c in dcells:
            groups.setdefault((c.model, c.seed, repr(sorted(plan.model_params[c.task][c.model].items()))), []).append(c)
        for cells in groups.values():
            adapter = _adapter(plan, cells[0], settings)
            key = adapter_cache_key(adapter, ds.sha256, adata)
            skip = [c for c in cells if c in done and cache.contains(key)]
            summary.resumed += skip
            todo = [c for c in cells if c not in skip]
            if todo:
                _run_group(plan, adapter, todo, data, ds.sha256, cache, device, settings, writer, summary)
    return summary


def _run_group(plan, adapter, cells, data, sha, cache, device, settings, writer, summary) -> None:
    log.info("embedding %s with %s (seed %d)", cells[0].dataset, adapter.key, adapter.seed)
    stamp = dict(run_id=writer.dir.name, dataset=cells[0].dataset, model=cells[0].model, seed=adapter.seed,
                 dataset_sha256=sha, adapter_version=adapter.version, weights_id=adapter.weights_id)
    try:
        emb = embed(adapter, data.adata, dataset_sha256=sha, cache=cache, device=device, batch_size=settings.batch_size)
    except CellError as exc:
        log.warning("%s on %s: %s", adapter.key, cells[0].dataset, exc)
        _emit(writer, summary, [_cell_error(exc, task=c.task, **stamp) for c in cells])
        return
    timings = dict(prepare_s=emb.prepare_s, embed_s=emb.embed_s, peak_ram_mb=emb.peak_ram_mb,
                   peak_gpu_mb=emb.peak_gpu_mb, embedding_cached=emb.cached)
    graph = NeighborGraph(emb.X)  # one kNN search per embedding, shared by the tasks that accept it
    if emb.cached:  # report the timings of the run that computed it
        timings.update({k: emb.meta.get(k) for k in ("prepare_s", "embed_s", "peak_ram_mb", "peak_gpu_mb")})
    for c in cells:
        task = TASKS.get(plan.tasks[c.task].task)()
        suite_name, suite = plan.metric_suites[c.task]
        base_params = {"primary": task.primary_id(suite, plan.task_params[c.task]), "min_max_scaled": suite.min_max_scale,
                       "kind": adapter.kind, "task_family": "embedding",
                       "model_params": adapter.record_params(), "embedding_dim": int(emb.X.shape[1]),
                       "n_cells": int(emb.X.shape[0]), "embedding_info": emb.meta.get("run_info") or {}}
        try:
            shared = {"neighbors": graph} if getattr(task, "shares_neighbors", False) else {}
            outcomes = task.run(data, emb.X, params=plan.task_params[c.task], seed=c.seed, suite=suite, **shared)
        except CellError as exc:
            outcomes = [Outcome("*", "", True, status=exc.status, reason=str(exc))]
        recs = [_record(o, c, suite_name, base_params, timings, stamp) for o in outcomes]
        writer.write_units(c.task, c.dataset, c.model, c.seed, outcomes)
        _emit(writer, summary, recs)
        log.info("%s · %s · %s · seed %d: %d metrics", c.task, c.dataset, c.model, c.seed, len(recs))


def _run_direct(plan: Plan, cells: list[Cell], ds, prepared: dict, device, settings: Settings, writer: RunWriter,
                summary: RunSummary) -> None:
    """Tasks that read the dataset themselves: one call per (task, seed) scores all its predictors;
    records stay one per (task, dataset, model=predictor, seed, metric), and the per-perturbation
    table lands beside records.jsonl, named in every record's params."""
    groups: dict[tuple[str, int], list[Cell]] = {}
    for c in cells:
        groups.setdefault((c.task, c.seed), []).append(c)
    for (tname, seed), group in groups.items():
        task = TASKS.get(plan.tasks[tname].task)()
        suite_name, suite = plan.metric_suites[tname]
        models = [c.model for c in group]
        stamp = dict(run_id=writer.dir.name, dataset=ds.name, seed=seed, dataset_sha256=ds.sha256)
        t0 = time.perf_counter()
        embedders = {}
        for emb in task.adapter_embeddings(models, plan.task_params[tname]):
            try:  # a model without its checkpoint loses its own probes, not the whole task
                adapter = ADAPTERS.get(emb)(plan.model_params[tname][emb], seed=seed, model_dir=settings.model_dir)
                adapter.load(primary_device(device))
            except CellError as exc:
                lost = [m for m in models if m.split("_", 1)[-1] == emb]
                _emit(writer, summary, [_cell_error(exc, task=tname, model=m, **stamp) for m in lost])
                models = [m for m in models if m not in lost]
                continue
            embedders[emb] = adapter.gene_embeddings
        if not models:
            continue
        try:
            res = task.run_direct(ds.adata, name=ds.name, entry=ds.entry, models=models, params=plan.task_params[tname],
                                  seed=seed, suite=suite, embedders=embedders, prepared=prepared.get((tname, ds.name)))
        except CellError as exc:
            _emit(writer, summary, [_cell_error(exc, task=tname, model=m, **stamp) for m in models])
            continue
        table = Path("tables") / f"{tname}__{ds.name}__seed{seed}.csv"
        (writer.dir / "tables").mkdir(parents=True, exist_ok=True)
        res.table.to_csv(writer.dir / table, index=False)
        timings = Timings(metric_s=time.perf_counter() - t0)
        recs = [MetricResult(task=tname, model=m, metric=o.id, value=o.value, status=o.status, reason=o.reason,
                             family=o.family or None, higher_is_better=o.higher_is_better, suite=suite_name,
                             params={"primary": suite.primary, "per_perturbation_table": str(table), **o.params,
                                     "kind": task.model_kind(m, plan.task_params[tname]), "task_family": task.key},
                             timings=timings, **stamp)
                for m in models for o in res.outcomes[m]]
        for m in models:
            writer.write_units(tname, ds.name, m, seed, res.outcomes[m])
        _emit(writer, summary, recs)
        log.info("%s · %s · seed %d: %d predictors, %d records", tname, ds.name, seed, len(models), len(recs))


def _emit(writer: RunWriter, summary: RunSummary, recs: list[MetricResult]) -> None:
    writer.append(recs)
    summary.records += recs


def _cell_error(exc: CellError, **stamp) -> MetricResult:
    """The one record of a cell that failed or was skipped as a whole."""
    return MetricResult(metric="*", status=exc.status, reason=str(exc), **stamp)


def _record(o: Outcome, c: Cell, suite_name: str, base_params: dict, timings: dict, stamp: dict) -> MetricResult:
    return MetricResult(
        task=c.task, metric=o.id, value=o.value, status=o.status, reason=o.reason, family=o.family or None,
        higher_is_better=o.higher_is_better, suite=suite_name, params={**base_params, **o.params},
        timings=Timings(metric_s=o.metric_s, **timings), **stamp,
    )


__all__ = ["RunSummary", "execute"]
