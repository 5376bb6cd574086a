"""Result records: one frozen MetricResult per (task, dataset, model, seed, metric[, submetric]) and
one RunManifest per invocation. Records are append-only JSONL; leaderboards derive from them.

Layout of a results directory::

    <output_dir>/runs/<run_id>/manifest.json
    <output_dir>/runs/<run_id>/records.jsonl
    <output_dir>/runs/<run_id>/units/<task>__<dataset>__<model>__seed<seed>.csv.gz

A units file holds, per metric of that matrix cell whose value is a mean over units (cells, labels,
perturbations), the per-unit values: what paired bootstrap intervals in reports resample.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from scfm_bench.exceptions import RecordsError

if TYPE_CHECKING:
    import pandas as pd

SCHEMA_VERSION = 1
UNIT_COLUMNS = ("task", "dataset", "model", "seed", "metric", "unit", "id", "value")
Status = Literal["ok", "skipped", "failed"]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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
        if self.status == "ok" and self.value is None:
            raise ValueError(f"record {self.metric!r}: status ok needs a value")
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
    """Appends records of one run; the run folder appears only when the first thing is written."""

    def __init__(self, output_dir: Path, run_id: str) -> None:
        self.dir = Path(output_dir) / "runs" / run_id
        self.records_path = self.dir / "records.jsonl"

    def write_manifest(self, manifest: RunManifest) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / "manifest.json.tmp"
        tmp.write_text(manifest.model_dump_json(indent=2))
        os.replace(tmp, self.dir / "manifest.json")

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
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        frame.to_csv(tmp, index=False, compression="gzip")
        os.replace(tmp, path)
        return path

    def append(self, records: list[MetricResult]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        with self.records_path.open("a") as fh:
            for r in records:
                fh.write(r.model_dump_json() + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def _record_files(path: Path) -> list[Path]:
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(path.glob("**/records.jsonl"))
    raise RecordsError(f"Results path {path} does not exist. Pass a folder written by `scfm-bench run --output-dir`.")


def read_records(*paths: Path) -> list[MetricResult]:
    """Read every records.jsonl under the given folders (or the given files), oldest run first."""
    files = [f for p in paths for f in _record_files(p)]
    if not files:
        raise RecordsError(
            f"No records.jsonl found under {', '.join(map(str, paths))}. Is this a results folder of `scfm-bench run`?"
        )
    out: list[MetricResult] = []
    for f in files:
        lines = [ln for ln in f.read_text().splitlines() if ln.strip()]
        for i, line in enumerate(lines, 1):
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as e:
                raise RecordsError(f"{f}:{i}: not valid JSON ({e.msg}); the file is corrupt or truncated.") from None
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
        raise RecordsError(f"The results files {', '.join(map(str, files))} hold no records.")
    return sorted(out, key=lambda r: r.created_at)


def read_manifests(*paths: Path) -> list[RunManifest]:
    out = []
    for f in (f for p in paths for f in _record_files(p)):
        m = f.parent / "manifest.json"
        if m.exists():
            try:
                out.append(RunManifest.model_validate_json(m.read_text()))
            except ValidationError as e:
                raise RecordsError(f"{m}: invalid run manifest: {e.errors()[0]['msg']}") from None
    return out


def read_units(*paths: Path) -> "pd.DataFrame":
    """Every per-unit table beside the records under ``paths``: UNIT_COLUMNS plus ``run_id``."""
    import pandas as pd

    files = [u for p in paths for f in _record_files(p) for u in sorted((f.parent / "units").glob("*.csv.gz"))]
    frames = [pd.read_csv(u, dtype={"id": str, "task": str, "dataset": str, "model": str, "metric": str})
              .assign(run_id=u.parent.parent.name) for u in files]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*UNIT_COLUMNS, "run_id"])


def latest_per_key(records: list[MetricResult]) -> list[MetricResult]:
    """Keep the newest record for each (task, dataset, model, seed, metric, submetric)."""
    seen: dict[tuple, MetricResult] = {}
    for r in records:  # oldest first, so later ones win
        seen[(*r.cell, r.metric, r.submetric)] = r
    return list(seen.values())
