"""Run a plan in this process. Order: validate every dataset and model first (bad input aborts with
nothing written), then per dataset preprocess once, per (model, seed) embed once (cached), per task
score. Every cell's records are checked (finite, inside the metric's range) and written as soon as
they exist, one file per cell, atomically: a run killed at any point keeps whole cells only."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scfm_bench import __version__
from scfm_bench.adapters import Adapter
from scfm_bench.config import MetricSuite
from scfm_bench.embed import EmbeddingCache, embed, primary_device, resolve_device
from scfm_bench.exceptions import CellError, CellSkipped
from scfm_bench.metrics import NeighborGraph, Outcome
from scfm_bench.progress import run_progress
from scfm_bench.records import MetricResult, RunManifest, RunWriter, Timings, latest_per_key, new_run_id, read_records
from scfm_bench.registry import ADAPTERS, METRICS, TASKS
from scfm_bench.runner.lock import output_lock, unwritable
from scfm_bench.runner.plan import Cell, Plan
from scfm_bench.runner.provenance import git_commit, machine_info, package_versions
from scfm_bench.settings import Settings
from scfm_bench.tasks import CellOutputs, TaskData

log = logging.getLogger(__name__)

# the shared preprocessing of every embedding task (part of each embedding's identity)
PREPROCESS = {"n_top_genes": 2000, "n_pcs": 50, "seed": 0}


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
        cells = [c for c in plan.cells if c.dataset == name and not plan.is_direct(c)]
        task_classes = [TASKS.get(plan.tasks[c.task].task) for c in cells]
        adapters = {c.model: _adapter(plan, c, settings) for c in cells}
        ds = load_dataset(name, entry, settings, suite_root=plan.suite.root)
        validate_fields(ds, need_label=any(t.needs_label for t in task_classes),
                        need_batch=any(t.needs_batch or adapters[c.model].input_spec.needs_batch
                                       for t, c in zip(task_classes, cells)))
        for a in adapters.values():
            a.check(ds.adata)
        # direct tasks validate the data themselves (bad input aborts before writing); loaded once per task
        for t in sorted({c.task for c in plan.cells if c.dataset == name and plan.is_direct(c)}):
            prepared[(t, name)] = TASKS.get(plan.tasks[t].task).load(ds.adata, name=name, entry=entry, params=plan.task_params[t])
        loaded[name] = ds
    return loaded, prepared


def input_key(dataset_sha256: str, entry) -> str:
    """Identity of what every embedding of a dataset starts from: the file, its field map (label,
    batch, counts layer, gene ids, rounding) and the preprocessing parameters and scanpy version."""
    from importlib.metadata import version

    payload = {"dataset": dataset_sha256, "fields": entry.fields.model_dump(mode="json"), "preprocess": PREPROCESS,
               "scanpy": version("scanpy")}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def prepare_input(ds, entry, *, cache_dir: Path | None = None):
    """The preprocessed AnnData that embeddings and embedding tasks see, with the field map declared
    in ``uns`` (adapters read the label/batch columns from it; the embedding cache key covers it).
    With ``cache_dir`` it is cached on disk under its input key (sha256-verified), so jobs in other
    processes or on other nodes see exactly the same matrix."""
    from scfm_bench.data import preprocess

    path = Path(cache_dir) / "preprocessed" / f"{input_key(ds.sha256, entry)}.h5ad" if cache_dir else None
    if path is not None and (adata := _read_verified(path)) is not None:
        return adata
    adata = preprocess(ds.adata, **PREPROCESS)
    # h5ad cannot store None or empty lists in uns; leaving them out keeps the identity unambiguous
    adata.uns["scfm_bench_fields"] = {k: v for k, v in entry.fields.model_dump(mode="json").items() if v not in (None, [])}
    if path is not None:
        from scfm_bench.atomic import atomic_path, atomic_write_text
        from scfm_bench.data.hashing import file_sha256

        with atomic_path(path) as tmp:
            adata.write_h5ad(tmp)
        atomic_write_text(path.with_suffix(".sha256"), file_sha256(path))
    return adata


def _read_verified(path: Path):
    import anndata as ad

    from scfm_bench.data.hashing import file_sha256

    sidecar = path.with_suffix(".sha256")
    if not (path.is_file() and sidecar.is_file()):
        return None
    if sidecar.read_text().strip() != file_sha256(path):
        log.warning("preprocessing cache entry %s is corrupt (sha256 mismatch); recomputing it", path)
        return None
    return ad.read_h5ad(path)


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def resumable(plan: Plan, output_dir: Path, shas: dict[str, str | None], settings: Settings) -> set[Cell]:
    """Cells whose current records (latest wins) in earlier runs of this output folder are final: no
    failure, no whole-cell record, and computed from the same input and model parameters. A dataset
    whose sha256 is None here (a Slurm submission does not read data) is compared by the sha256 its
    records carry, so only its field map and preprocessing are checked."""
    if not (output_dir / "runs").is_dir():
        return set()
    try:
        old = latest_per_key(read_records(output_dir))
    except Exception as exc:  # an unreadable old run simply is not resumed
        log.warning("--resume: earlier records in %s are unreadable (%s); running every cell", output_dir, exc)
        return set()
    by_cell: dict[tuple, list[MetricResult]] = {}
    for r in old:
        by_cell.setdefault(r.cell, []).append(r)
    keys: dict[tuple[str, str], str] = {}

    def key(dataset: str, sha: str) -> str:
        if (dataset, sha) not in keys:
            keys[(dataset, sha)] = input_key(sha, plan.datasets[dataset])
        return keys[(dataset, sha)]

    done = set()
    for c in plan.cells:
        recs = by_cell.get((c.task, c.dataset, c.model, c.seed))
        if not recs or any(r.status == "failed" or r.metric == "*" for r in recs):
            continue
        if not plan.is_direct(c):
            params = _adapter(plan, c, settings).record_params()
            if not all(r.params.get("input_key") == key(c.dataset, shas.get(c.dataset) or r.dataset_sha256 or "")
                       and _same(r.params.get("model_params"), params) for r in recs):
                continue
        done.add(c)
    return done


def execute(plan: Plan, settings: Settings, *, output_dir: Path, resume: bool = False,
            command_line: list[str] | None = None) -> RunSummary:
    """Run the plan into ``output_dir``; the output folder is locked for the whole run."""
    loaded, prepared = _load_and_validate(plan, settings)  # raises ScfmBenchError before anything is written
    output_dir = Path(output_dir)
    with output_lock(output_dir):
        return _execute(plan, settings, loaded, prepared, output_dir=output_dir, resume=resume, command_line=command_line)


def _execute(plan: Plan, settings: Settings, loaded: dict, prepared: dict, *, output_dir: Path, resume: bool,
             command_line: list[str] | None) -> RunSummary:
    from scfm_bench.ontology import configure_cache

    cache = EmbeddingCache(settings.embeddings_dir)
    configure_cache(settings.cache_dir / "ontology")  # ontology-side RWR/DCA vectors, computed once per CL version
    done = resumable(plan, output_dir, {d: ds.sha256 for d, ds in loaded.items()}, settings) if resume else set()
    # resolving the device imports torch (seconds): not for a resume with nothing left
    device = resolve_device(settings.device) if len(done) < len(plan.cells) else settings.device

    run_id = new_run_id()
    writer = RunWriter(output_dir, run_id, RunManifest(  # written with the first records: no empty run folders
        run_id=run_id, package_version=__version__, git_commit=git_commit(), command_line=command_line or sys.argv,
        machine=machine_info(device), packages=package_versions(), suite=plan.to_dict(),
        settings=settings.model_dump(mode="json"),
    ))
    summary = RunSummary(run_id, writer.dir, resumed=[c for c in plan.cells if c in done])
    todo = [c for c in plan.cells if c not in done]
    with run_progress(len(todo)) as progress:
        run_cells(_Context(plan, settings, device, cache, writer, summary, progress), loaded, prepared, todo)
    return summary


def run_cells(ctx: "_Context", loaded: dict, prepared: dict, cells: list[Cell], *, embed_only: bool = False,
              preprocessed_cache: Path | None = None) -> None:
    """Run ``cells`` (all of the run, or one job's share): direct tasks per (task, seed), embedding
    tasks per shared embedding. ``embed_only`` fills the embedding cache and writes no records (the
    embedding stage of a job array; the evaluation stage reads the cache); jobs share the
    preprocessing through ``preprocessed_cache``."""
    plan = ctx.plan
    for dname, ds in loaded.items():
        if not embed_only:
            _run_direct(ctx, [c for c in cells if c.dataset == dname and plan.is_direct(c)], ds, prepared)
        dcells = [c for c in cells if c.dataset == dname and not plan.is_direct(c)]
        if not dcells:
            continue
        entry = plan.datasets[dname]
        fields = entry.fields
        adata = prepare_input(ds, entry, cache_dir=preprocessed_cache)
        data = TaskData(
            adata=adata,
            labels=adata.obs[fields.label].astype(str).to_numpy() if fields.label else None,
            batch=adata.obs[fields.batch].astype(str).to_numpy() if fields.batch else None,
            ontology_ids=adata.obs[fields.ontology_id].astype(str).to_numpy() if fields.ontology_id else None,
            continuous={c: adata.obs[c].to_numpy(dtype=float) for c in fields.continuous},
        )
        ikey = input_key(ds.sha256, entry)
        # one adapter per (model, seed, parameter set): tasks sharing it share the embedding
        for group in embedding_groups(plan, dcells):
            adapter = _adapter(plan, group[0], ctx.settings)
            if embed_only:
                try:
                    embed(adapter, adata, dataset_sha256=ds.sha256, cache=ctx.cache, device=ctx.device,
                          batch_size=ctx.settings.batch_size)
                except Exception as exc:  # noqa: BLE001 - the evaluation stage records it for each cell
                    log.warning("%s on %s: %s", adapter.key, dname, _failure(exc))
                continue
            _run_group(ctx, adapter, group, data, ds.sha256, ikey)


def embedding_groups(plan: Plan, cells: list[Cell]) -> list[list[Cell]]:
    """Embedding-task cells grouped by the embedding they share: (dataset, model, seed, parameters)."""
    groups: dict[tuple, list[Cell]] = {}
    for c in cells:
        groups.setdefault((c.dataset, c.model, c.seed, repr(sorted(plan.model_params[c.task][c.model].items()))),
                          []).append(c)
    return list(groups.values())


@dataclass
class _Context:
    plan: Plan
    settings: Settings
    device: str
    cache: EmbeddingCache
    writer: RunWriter
    summary: RunSummary
    progress: Any
    extra_params: dict = field(default_factory=dict)  # stamped into every record (e.g. a job's retry history)


def _failure(exc: Exception) -> CellError:
    """A cell's own problem as it is; anything unexpected becomes a failure naming its type."""
    if isinstance(exc, CellError):
        return exc
    log.warning("unexpected %s: %s", type(exc).__name__, exc, exc_info=log.isEnabledFor(logging.DEBUG))
    return CellError(f"{type(exc).__name__}: {exc}")


def _run_group(ctx: _Context, adapter: Adapter, cells: list[Cell], data: TaskData, sha: str, ikey: str) -> None:
    log.info("embedding %s with %s (seed %d)", cells[0].dataset, adapter.key, adapter.seed)
    stamp = dict(run_id=ctx.writer.dir.name, dataset=cells[0].dataset, model=cells[0].model, seed=adapter.seed,
                 dataset_sha256=sha, adapter_version=adapter.version, weights_id=adapter.weights_id)
    cell_params = {"input_key": ikey, "model_params": adapter.record_params()}
    ctx.progress.start(cells[0].task, cells[0].dataset, adapter.key, adapter.seed)
    try:
        emb = embed(adapter, data.adata, dataset_sha256=sha, cache=ctx.cache, device=ctx.device,
                    batch_size=ctx.settings.batch_size)
    except Exception as exc:  # noqa: BLE001 - one cell's crash must not lose the others
        err = _failure(exc)
        log.warning("%s on %s: %s", adapter.key, cells[0].dataset, err)
        for c in cells:
            _emit(ctx, c, [_cell_error(err, task=c.task, params=cell_params, **stamp)])
        ctx.progress.done(len(cells))
        return
    timings = dict(prepare_s=emb.prepare_s, embed_s=emb.embed_s, peak_ram_mb=emb.peak_ram_mb,
                   peak_gpu_mb=emb.peak_gpu_mb, embedding_cached=emb.cached)
    X = emb.X
    if adapter.output == "knn_graph":  # the model's own graph (BBKNN) stands in for the kNN search
        graph, X = NeighborGraph.from_packed(emb.X), None
    else:
        graph = NeighborGraph(X)  # one kNN search per embedding, shared by the tasks that accept it
    cell_outputs = CellOutputs.from_meta(adapter.input_spec.uses_labels, emb.meta.get("cell_outputs") or {}, emb.X.shape[0])
    if emb.cached:  # report the timings of the run that computed it
        timings.update({k: emb.meta.get(k) for k in ("prepare_s", "embed_s", "peak_ram_mb", "peak_gpu_mb")})
    for i, c in enumerate(cells):
        if i:
            ctx.progress.start(c.task, c.dataset, c.model, c.seed)
        task = TASKS.get(ctx.plan.tasks[c.task].task)()
        suite_name, suite = ctx.plan.metric_suites[c.task]
        base_params = {"primary": task.primary_id(suite, ctx.plan.task_params[c.task]), "min_max_scaled": suite.min_max_scale,
                       "kind": adapter.kind, "task_family": "embedding", **cell_params, "embedding_dim": int(emb.X.shape[1]),
                       "n_cells": int(emb.X.shape[0]), "embedding_info": emb.meta.get("run_info") or {}}
        try:
            shared = {"neighbors": graph} if task.shares_neighbors else {}
            if task.reads_cell_outputs:
                shared["cell_outputs"] = cell_outputs
            if X is None and "neighbors" not in shared:
                raise CellSkipped(f"model {adapter.key!r} yields a kNN graph, not an embedding; task {c.task!r} needs an "
                                  "embedding (as in scIB, a graph method gets only the graph metrics)")
            outcomes = task.run(data, X, params=ctx.plan.task_params[c.task], seed=c.seed, suite=suite, **shared)
        except Exception as exc:  # noqa: BLE001
            err = _failure(exc)
            outcomes = [Outcome("*", "", True, status=err.status, reason=str(err))]
        recs = [_record(o, c, suite_name, suite, base_params, timings, stamp) for o in outcomes]
        _emit(ctx, c, recs, outcomes)
        ctx.progress.done()
        log.info("%s · %s · %s · seed %d: %d metrics", c.task, c.dataset, c.model, c.seed, len(recs))


def _run_direct(ctx: _Context, cells: list[Cell], ds, prepared: dict) -> None:
    """Tasks that read the dataset themselves: one call per (task, seed) scores all its predictors;
    records stay one per (task, dataset, model=predictor, seed, metric), and the per-perturbation
    table lands beside the records, named in every record's params."""
    groups: dict[tuple[str, int], list[Cell]] = {}
    for c in cells:
        groups.setdefault((c.task, c.seed), []).append(c)
    for (tname, seed), group in groups.items():
        ctx.progress.start(tname, ds.name, f"{len(group)} predictors", seed)
        _run_direct_group(ctx, tname, seed, group, ds, prepared)
        ctx.progress.done(len(group))


def _run_direct_group(ctx: _Context, tname: str, seed: int, group: list[Cell], ds, prepared: dict) -> None:
    plan = ctx.plan
    task = TASKS.get(plan.tasks[tname].task)()
    suite_name, suite = plan.metric_suites[tname]
    by_model = {c.model: c for c in group}
    models = list(by_model)
    stamp = dict(run_id=ctx.writer.dir.name, dataset=ds.name, seed=seed, dataset_sha256=ds.sha256)
    t0 = time.perf_counter()
    embedders = {}
    try:
        for emb in task.adapter_embeddings(models, plan.task_params[tname]):
            try:  # a model without its checkpoint loses its own probes, not the whole task
                adapter = ADAPTERS.get(emb)(plan.model_params[tname][emb], seed=seed, model_dir=ctx.settings.model_dir)
                adapter.load(primary_device(ctx.device))
            except Exception as exc:  # noqa: BLE001
                err = _failure(exc)
                lost = task.models_using(models, emb)
                for m in lost:
                    _emit(ctx, by_model[m], [_cell_error(err, task=tname, model=m, **stamp)])
                models = [m for m in models if m not in lost]
                continue
            embedders[emb] = adapter if task.takes_adapters else adapter.gene_embeddings
        if not models:
            return
        res = task.run_direct(ds.adata, name=ds.name, entry=ds.entry, models=models, params=plan.task_params[tname],
                              seed=seed, suite=suite, embedders=embedders, prepared=prepared.get((tname, ds.name)))
    except Exception as exc:  # noqa: BLE001
        err = _failure(exc)
        for m in models:
            _emit(ctx, by_model[m], [_cell_error(err, task=tname, model=m, **stamp)])
        return
    table = Path("tables") / f"{tname}__{ds.name}__seed{seed}.csv"
    from scfm_bench.atomic import atomic_path

    try:
        with atomic_path(ctx.writer.dir / table) as tmp:
            res.table.to_csv(tmp, index=False)
    except OSError as exc:
        raise unwritable(ctx.writer.dir, exc) from None
    metric_s = time.perf_counter() - t0
    for m in models:
        timings = Timings(metric_s=metric_s, **res.timings.get(m, {}))
        recs = [_result(suite, task=tname, model=m, metric=o.id, value=o.value, status=o.status, reason=o.reason,
                        family=o.family or None, higher_is_better=o.higher_is_better, suite=suite_name,
                        params={"primary": suite.primary, "per_perturbation_table": str(table), **o.params,
                                "kind": task.model_kind(m, plan.task_params[tname]) or ADAPTERS.get(m).kind,
                                "task_family": task.key},
                        timings=timings, **stamp)
                for o in res.outcomes[m]]
        _emit(ctx, by_model[m], recs, res.outcomes[m])
    log.info("%s · %s · seed %d: %d predictors", tname, ds.name, seed, len(models))


def cell_job(cell: Cell) -> str:
    """The name of a cell's records file (one file per cell)."""
    return f"{cell.task}__{cell.dataset}__{cell.model}__seed{cell.seed}"


def _emit(ctx: _Context, cell: Cell, recs: list[MetricResult], outcomes: list[Outcome] | None = None) -> None:
    """Write one cell's records (its own file, atomically) and the per-unit values of its outcomes."""
    job = cell_job(cell)
    if ctx.extra_params:
        recs = [r.model_copy(update={"params": {**r.params, **ctx.extra_params}}) for r in recs]
    try:
        if outcomes is not None:
            ctx.writer.write_units(cell.task, cell.dataset, cell.model, cell.seed, outcomes)
        ctx.writer.write(job, recs)
    except OSError as exc:  # read-only or full output folder: a configuration problem, exit 2
        raise unwritable(ctx.writer.dir, exc) from None
    ctx.summary.records += recs


def _cell_error(exc: CellError, **stamp) -> MetricResult:
    """The one record of a cell that failed or was skipped as a whole."""
    return MetricResult(metric="*", status=exc.status, reason=str(exc), **stamp)


def _value_problem(value: Any, metric_id: str, suite: MetricSuite) -> str | None:
    """Why ``value`` cannot be recorded as ok: not a finite number, or outside the metric's declared range."""
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return f"{metric_id}: value {value} is not a finite number"
    key = {e.id: e.metric for e in suite.metrics}.get(metric_id.partition(":")[0])
    if key is not None and key in METRICS:
        lo, hi = METRICS.get(key).spec.range
        if not lo - 1e-9 <= value <= hi + 1e-9:
            return f"{metric_id}: value {value} is outside the declared range [{lo}, {hi}] of metric {key!r}"
    return None


def _result(metric_suite: MetricSuite, /, **kw) -> MetricResult:
    """Every metric record is built here: an ok value is checked once, centrally, before it is written."""
    if kw.get("status", "ok") == "ok" and (why := _value_problem(kw.get("value"), kw["metric"], metric_suite)) is not None:
        log.warning("%s · %s · %s: %s; recorded as failed", kw["task"], kw["dataset"], kw["model"], why)
        kw.update(status="failed", value=None, reason=why)
    return MetricResult(**kw)


def _record(o: Outcome, c: Cell, suite_name: str, suite: MetricSuite, base_params: dict, timings: dict,
            stamp: dict) -> MetricResult:
    return _result(
        suite, task=c.task, metric=o.id, value=o.value, status=o.status, reason=o.reason, family=o.family or None,
        higher_is_better=o.higher_is_better, suite=suite_name, params={**base_params, **o.params},
        timings=Timings(metric_s=o.metric_s, **timings), **stamp,
    )


__all__ = ["RunSummary", "execute", "input_key", "prepare_input"]
