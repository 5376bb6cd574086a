"""Schemas of datasets.yaml, tasks/*.yaml and metrics/*.yaml. Unknown keys are errors (extra="forbid")."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldMap(_Strict):
    """Where a dataset keeps what the tasks need."""

    label: str | None = Field(None, description="obs column with cell-type labels")
    batch: str | None = Field(None, description="obs column with batch ids")
    ontology_id: str | None = Field(None, description="obs column with Cell Ontology ids (CL:nnnnnnn)")
    ontology_map: dict[str, str] = Field(default_factory=dict, description="label -> CL id, for data without an id "
                                         "column: fills obs[ontology_id] (unlisted labels are kept and reported unmapped)")
    continuous: list[str] = Field(default_factory=list, description="numeric obs columns (per-cell properties such as "
                                  "a score or pseudotime); ROGI reports one value per column")
    gene_ids: str = Field("var_names", description="'var_names' or a var column holding gene ids")
    gene_id_namespace: Literal["symbol", "ensembl"] = "symbol"
    counts_layer: str = Field("X", description="'X', 'raw.X', or the layers key holding raw integer counts")
    non_integer_counts: Literal["refuse", "round"] = Field(
        "refuse", description="Counts deposited as non-integers (e.g. some plate-based protocols): refuse, or round half-up")


    @model_validator(mode="after")
    def _map_needs_columns(self) -> "FieldMap":
        if self.ontology_map and (self.label is None or self.ontology_id is None):
            raise ValueError("ontology_map needs label (the column mapped) and ontology_id (the column it fills)")
        return self


class PerturbationFields(_Strict):
    """How a perturbation screen names its conditions (GEARS, scPerturb and PerturBench layouts)."""

    key: str | None = Field(None, description="obs column with condition labels; None: auto-detect "
                            "perturbation, condition, gene, target_gene")
    control_labels: list[str] = Field(default_factory=lambda: ["ctrl", "control", "non-targeting", "NT"],
                                      description="labels of control cells")
    combo_delim: str = Field("+", min_length=1, description="separator of multi-target labels (A+B)")
    values: Literal["auto", "counts", "log1p"] = Field(
        "auto", description="what X holds: raw counts (normalised here), log1p-normalised values, or auto-detect")


class DatasetEntry(_Strict):
    source: Literal["builtin", "url", "file", "pair"]
    description: str = ""
    builder: str | None = Field(None, description="builtin only: name of the generator in scfm_bench.data")
    params: dict[str, Any] = Field(default_factory=dict, description="builtin only: generator parameters")
    url: str | None = None
    sha256: str | None = Field(None, description="url/file: expected sha256; recorded on first fetch if absent")
    filename: str | None = Field(None, description="url: file name in the data directory")
    member: str | None = Field(None, description="url: the download is a .zip/.tar(.gz) archive; the file inside it "
                                                 "to unpack as `filename` (e.g. norman/perturb_processed.h5ad)")
    path: str | None = Field(None, description="file: path, absolute or relative to the suite directory (else to the data directory)")
    reference: str | None = Field(None, description="pair: catalogue name of the reference dataset")
    query: str | None = Field(None, description="pair: catalogue name of the query dataset (loaded together with the "
                                                "reference on shared genes, obs['scfm_role'] = reference/query)")
    shares_cells_with: list[str] = Field(default_factory=list, description="Datasets holding some of the same cells: "
                                         "never paired with this one as reference and query")
    organism: str = "human"
    licence: str | None = None
    citation: str | None = None
    simulated: str | None = Field(None, description="What part of the data is simulated, said plainly")
    fields: FieldMap = Field(default_factory=FieldMap)
    min_cells_per_batch: int = Field(10, ge=1)
    in_pretraining: list[str] = Field(
        default_factory=list, description="Model keys whose pretraining corpus contains this dataset (leakage marker)")
    perturbation: PerturbationFields | None = Field(None, description="perturbation screens: condition field map")

    @model_validator(mode="after")
    def _source_fields(self) -> "DatasetEntry":
        need = {"builtin": ["builder"], "url": ["url", "filename"], "file": ["path"], "pair": ["reference", "query"]}[self.source]
        missing = [k for k in need if getattr(self, k) is None]
        if missing:
            raise ValueError(f"source {self.source!r} needs {', '.join(missing)}")
        return self


class Catalogue(_Strict):
    version: int = 1
    datasets: dict[str, DatasetEntry]

    @model_validator(mode="after")
    def _pairs(self) -> "Catalogue":
        for name, e in self.datasets.items():
            if e.source != "pair":
                continue
            for role in ("reference", "query"):
                member = getattr(e, role)
                if member not in self.datasets or self.datasets[member].source == "pair":
                    raise ValueError(f"pair {name!r}: {role} {member!r} must be a non-pair dataset of this catalogue")
            ref, query = self.datasets[e.reference], self.datasets[e.query]
            if e.reference == e.query or e.query in ref.shares_cells_with or e.reference in query.shares_cells_with:
                raise ValueError(f"pair {name!r}: {e.reference!r} and {e.query!r} share cells (shares_cells_with), so the "
                                 "query is not independent of the reference. Fix: pair datasets with disjoint cells.")
        return self


def split_model_ref(ref: str) -> tuple[str, str]:
    """``"precomputed:mine"`` -> ``("precomputed", "mine")`` (adapter key, instance name); ``"pca"`` -> ``("pca", "pca")``."""
    key, _, name = ref.partition(":")
    return key, name or key


class TaskConfig(_Strict):
    """One benchmark task instance (tasks/<name>.yaml)."""

    task: str = Field(description="Registered task key, e.g. batch_integration")
    description: str = ""
    datasets: list[str]
    models: list[str]
    metric_suite: str | None = Field(None, description="metrics/<name>.yaml; default: the task's own default")
    params: dict[str, Any] = Field(default_factory=dict)
    model_params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    seeds: list[int] = Field(default_factory=lambda: [0])
    default: bool = Field(True, description="false: a heavy task that runs only when named with --task")


class MetricEntry(_Strict):
    id: str = Field(description="Column name in records and leaderboards")
    metric: str = Field(description="Registered metric key")
    output: str | None = Field(None, description="For metrics returning several values: which one")
    family: str = Field(description="bio / batch / ontology / ...")
    kwargs: dict[str, Any] = Field(default_factory=dict)


class AggregateSpec(_Strict):
    """A derived score: the (weighted) mean of metric ids, of a family's metrics, or of other aggregates."""

    id: str
    of: list[str] | None = None
    family: str | None = None
    weights: dict[str, float] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> "AggregateSpec":
        if sum(x is not None for x in (self.of, self.family, self.weights)) != 1:
            raise ValueError(f"aggregate {self.id!r} needs exactly one of of/family/weights")
        return self


class MetricSuite(_Strict):
    description: str = ""
    version: int = 1
    metrics: list[MetricEntry]
    aggregates: list[AggregateSpec] = Field(default_factory=list)
    primary: str | None = Field(None, description="Metric or aggregate id that ranks the leaderboard")
    min_max_scale: bool = Field(False, description="Aggregates over min-max-scaled metrics (scib-metrics option)")

    @model_validator(mode="after")
    def _ids(self) -> "MetricSuite":
        ids = [m.id for m in self.metrics] + [a.id for a in self.aggregates]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"duplicate ids: {sorted(dup)}")
        known = set()
        for m in self.metrics:
            known.add(m.id)
        families = {m.family for m in self.metrics}
        for a in self.aggregates:
            refs = a.of or list(a.weights or {})
            bad = [r for r in refs if r not in known]
            if bad:
                raise ValueError(f"aggregate {a.id!r} refers to unknown ids {bad}")
            if a.family is not None and a.family not in families:
                raise ValueError(f"aggregate {a.id!r}: no metric of family {a.family!r}")
            known.add(a.id)
        if self.primary is not None and self.primary not in known:
            raise ValueError(f"primary {self.primary!r} is not a metric or aggregate id")
        return self
