"""Result records: one frozen MetricResult per (task, dataset, model, seed, metric[, submetric]) and
one RunManifest per invocation. Records are append-only JSONL; leaderboards derive from them.

Layout of a results directory (one writer per file: each job writes its own records file
atomically, readers glob them; older runs may hold one ``records.jsonl``)::

    <output_dir>/runs/<run_id>/manifest.json
    <output_dir>/runs/<run_id>/records/<job>.jsonl
    <output_dir>/runs/<run_id>/units/<task>__<dataset>__<model>__seed<seed>.csv.gz

A units file holds, per metric of that matrix cell whose value is a mean over units (cells, labels,
perturbations), the per-unit values: what paired bootstrap intervals in reports resample.
"""

from __future__ import annotations

import json
import logging
import math
import re
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from scfm_bench.atomic import atomic_path, atomic_write_text
from scfm_bench.exceptions import RecordsError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)
SCHEMA_VERSION = 1
UNIT_COLUMNS = ("task", "dataset", "model", "seed", "metric", "unit", "id", "value")
Status = Literal["ok", "skipped", "failed"]


def now_iso() -> str:
    # microseconds: "latest wins" must order records written within the same second
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


class Timings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    prepare_s: float | None = None
    embed_s: float | None = None
    metric_s: float | None = None
    peak_ram_mb: float | None = None
    peak_gpu_mb: float | None = None
    embedding_cached: bool | None = None


class MetricResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = SCHEMA_VERSION
    run_id: str
    task: str = Field(description="Task name as in tasks/*.yaml")
    dataset: str
    model: str
    seed: int
    metric: str = Field(description="Metric id inside its suite (a column of the leaderboard)")
    submetric: str | None = None
    value: float | None = None
    status: Status = "ok"
    reason: str | None = None
    family: str | None = Field(None, description="bio / batch / ontology / aggregate / ...")
    higher_is_better: bool = True
    suite: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    dataset_sha256: str | None = None
    adapter_version: str | None = None
    weights_id: str | None = None
    timings: Timings = Field(default_factory=Timings)
    created_at: str = Field(default_factory=now_iso)

    def model_post_init(self, _: Any) -> None:
        if self.status == "ok" and (self.value is None or not math.isfinite(self.value)):
            raise ValueError(f"record {self.metric!r}: status ok needs a finite value, got {self.value}")
        if self.status != "ok" and (self.value is not None or not self.reason):
            raise ValueError(f"record {self.metric!r}: a {self.status} record carries a reason and no value")

    @property
    def cell(self) -> tuple[str, str, str, int]:
        return (self.task, self.dataset, self.model, self.seed)


class RunManifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = SCHEMA_VERSION
    run_id: str
    created_at: str = Field(default_factory=now_iso)
    package_version: str
    git_commit: str | None = None
    command_line: list[str] = Field(default_factory=list)
    machine: dict[str, Any] = Field(default_factory=dict)
    packages: dict[str, str | None] = Field(default_factory=dict)
    suite: dict[str, Any] = Field(default_factory=dict, description="The resolved suite that ran")
    settings: dict[str, Any] = Field(default_factory=dict)


class RunWriter:
    """Writes the records of one run, one file per job, each atomically (temp + rename): a killed run
    leaves whole files or none. The run folder and its manifest appear with the first records, so a
    run with nothing to do leaves no empty folder."""

    def __init__(self, output_dir: Path, run_id: str, manifest: RunManifest | None = None) -> None:
        self.dir = Path(output_dir) / "runs" / run_id
        self._manifest = manifest

    def write_manifest(self, manifest: RunManifest) -> None:
        atomic_write_text(self.dir / "manifest.json", manifest.model_dump_json(indent=2))
        self._manifest = None

    def write_units(self, task: str, dataset: str, model: str, seed: int, outcomes) -> Path | None:
        """The per-unit values of a matrix cell's ok outcomes (``Outcome.units``), one file per cell."""
        import numpy as np
        import pandas as pd

        parts = [pd.DataFrame({"metric": o.id, "unit": o.units.kind, "id": np.asarray(o.units.ids).astype(str),
                               "value": np.asarray(o.units.values, dtype=float)})
                 for o in outcomes if o.units is not None and o.status == "ok"]
        if not parts:
            return None
        frame = pd.concat(parts, ignore_index=True)
        for i, (name, value) in enumerate((("task", task), ("dataset", dataset), ("model", model), ("seed", seed))):
            frame.insert(i, name, value)
        path = self.dir / "units" / f"{task}__{dataset}__{model}__seed{seed}.csv.gz"
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False, compression="gzip")
        return path

    def write(self, job: str, records: list[MetricResult]) -> Path:
        """Write (or replace) the records file of ``job``."""
        if self._manifest is not None:
            self.write_manifest(self._manifest)
        path = self.dir / "records" / f"{job_file_name(job)}.jsonl"
        atomic_write_text(path, "".join(r.model_dump_json() + "\n" for r in records))
        return path


def job_file_name(job: str) -> str:
    """A file-system-safe, collision-free name for a job id."""
    import hashlib

    safe = re.sub(r"[^A-Za-z0-9_.+-]+", "_", job)[:120]
    return f"{safe}-{hashlib.sha256(job.encode()).hexdigest()[:8]}"


def _record_files(path: Path) -> list[Path]:
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        # hidden names are temporary files of writes in progress (scfm_bench.atomic)
        return sorted(p for p in [*path.glob("**/records.jsonl"), *path.glob("**/records/*.jsonl")]
                      if not p.name.startswith("."))
    raise RecordsError(f"Results path {path} does not exist. Pass a folder written by `scfm-bench run --output-dir`.")


def read_records(*paths: Path) -> list[MetricResult]:
    """Read every records.jsonl under the given folders (or the given files), oldest run first."""
    files = [f for p in paths for f in _record_files(p)]
    if not files:
        raise RecordsError(
            f"No records.jsonl found under {', '.join(map(str, paths))}. Is this a results folder of `scfm-bench run`?"
        )
    out: list[MetricResult] = []
    torn = 0
    for f in files:
        lines = [ln for ln in f.read_text().splitlines() if ln.strip()]
        for i, line in enumerate(lines, 1):
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as e:  # a torn write: report it, read the rest
                log.warning("%s:%d: skipped a line that is not valid JSON (%s); the file was truncated or corrupted",
                            f, i, e.msg)
                torn += 1
                continue
            version = raw.get("schema_version") if isinstance(raw, dict) else None
            if version != SCHEMA_VERSION:
                raise RecordsError(
                    f"{f}:{i}: record schema_version {version!r} is not supported by this scfm-bench "
                    f"(reads version {SCHEMA_VERSION}). Re-run the benchmark or use the scfm-bench that wrote it."
                )
            try:
                out.append(MetricResult.model_validate(raw))
            except ValidationError as e:
                raise RecordsError(f"{f}:{i}: invalid record: {e.errors()[0]['msg']}") from None
    if not out:
        why = f" ({torn} line(s) skipped as not valid JSON: truncated or corrupted)" if torn else ""
        raise RecordsError(f"The results files {', '.join(map(str, files))} hold no records{why}.")
    return sorted(out, key=lambda r: r.created_at)


def read_manifests(*paths: Path) -> list[RunManifest]:
    out = []
    run_dirs = dict.fromkeys(f.parent.parent if f.parent.name == "records" else f.parent
                             for p in paths for f in _record_files(p))
    for run_dir in run_dirs:
        m = run_dir / "manifest.json"
        if m.exists():
            try:
                out.append(RunManifest.model_validate_json(m.read_text()))
            except ValidationError as e:
                raise RecordsError(f"{m}: invalid run manifest: {e.errors()[0]['msg']}") from None
    return out


def read_units(*paths: Path) -> "pd.DataFrame":
    """Every per-unit table beside the records under ``paths``: UNIT_COLUMNS plus ``run_id``."""
    import pandas as pd

    runs = sorted({f.parent.parent if f.parent.name == "records" else f.parent for p in paths for f in _record_files(p)})
    files = [u for run in runs for u in sorted((run / "units").glob("*.csv.gz")) if not u.name.startswith(".")]
    frames = [pd.read_csv(u, dtype={"id": str, "task": str, "dataset": str, "model": str, "metric": str})
              .assign(run_id=u.parent.parent.name) for u in files]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*UNIT_COLUMNS, "run_id"])


def latest_per_key(records: list[MetricResult]) -> list[MetricResult]:
    """The current state of every cell, reading records oldest first: a newer record replaces the one
    with the same (metric, submetric); a whole-cell record (``metric="*"``: the cell failed or was
    skipped as a whole) replaces everything older of that cell; and a newer metric value replaces an
    older whole-cell record. So a stale value never mixes with a newer failure, and a success after a
    failure counts."""
    cells: dict[tuple, dict[tuple, MetricResult]] = {}
    for r in sorted(records, key=lambda r: r.created_at):
        cell = cells.setdefault(r.cell, {})
        if r.metric == "*":
            cell.clear()
        else:
            cell.pop(("*", None), None)
        cell[(r.metric, r.submetric)] = r
    return [r for cell in cells.values() for r in cell.values()]
