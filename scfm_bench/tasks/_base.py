"""The two task protocols. An :class:`EmbeddingTask` scores one embedding of a dataset
(``run(data, embedding, ...)``); a :class:`DirectTask` reads the dataset itself and scores its own
predictors (``load``, ``check_models``, ``adapter_embeddings``, ``run_direct``). The runner, the plan
and the job split dispatch on which of the two a registered task subclasses.

Tasks never import adapters; they receive embeddings as arrays and gene embeddings as callables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from scfm_bench.config.schemas import DatasetEntry, MetricSuite
from scfm_bench.metrics import MetricInputs, Outcome, compute_aggregates, evaluate_suite

if TYPE_CHECKING:
    from anndata import AnnData


@dataclass(frozen=True)
class TaskData:
    adata: "AnnData"  # preprocessed: X log-normalised, obsm["X_pca"]
    labels: np.ndarray | None
    batch: np.ndarray | None
    ontology_ids: np.ndarray | None = None  # Cell Ontology id per cell, when the dataset declares the column
    # the dataset's declared numeric properties (fields.continuous; {} when it declares none, None when unknown)
    continuous: dict[str, np.ndarray] | None = None


@dataclass(frozen=True)
class CellOutputs:
    """What a model reports per cell beside its embedding (tasks with ``reads_cell_outputs`` get it)."""

    uses_labels: bool = False  # the model trained on cell-type labels (its spec's uses_labels)
    labels_seen: np.ndarray | None = None  # bool per cell: the model saw this cell's label (all, when it does not say)
    predictions: np.ndarray | None = None  # the model's own label per cell (dataset label vocabulary), if it predicts

    @classmethod
    def from_meta(cls, uses_labels: bool, outputs: dict, n_cells: int) -> "CellOutputs":
        seen = None
        if uses_labels:
            seen = np.ones(n_cells, bool)
            if "labels_seen" in outputs:
                seen[:] = False
                seen[np.asarray(outputs["labels_seen"], dtype=int)] = True
        preds = outputs.get("predictions")
        return cls(uses_labels, seen, None if preds is None else np.asarray(preds, dtype=str))


class EmbeddingTaskParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    knn_method: Literal["auto", "exact", "hnsw", "pynndescent"] = Field(
        "auto", description="kNN for graph metrics: exact up to 200k cells under auto, else faiss HNSW (recorded).")


class ScibTaskParams(EmbeddingTaskParams):
    exact_quadratic: bool = Field(
        False, description="Silhouette/isolated labels/BRAS/kBET on every cell even above 100,000 cells (default: a "
                           "declared stratified subsample of 100,000 there; hours at 10^6 cells if true).")


class Task:
    """What both protocols share; a registered task subclasses exactly one of them."""

    key: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[type[BaseModel]] = EmbeddingTaskParams
    needs_label: ClassVar[bool] = True
    needs_batch: ClassVar[bool] = False
    default_suite: ClassVar[str]

    @classmethod
    def unsupported(cls, tname: str, entry: DatasetEntry) -> str | None:
        """Why this task (named ``tname`` in the suite) cannot use a catalogue entry (None: it can); a
        suite task that cannot is listed as not run instead of failing the run."""
        if entry.perturbation is not None:
            return "a perturbation screen, not a labelled dataset"
        if cls.needs_label and entry.fields.label is None:
            return "it needs cell-type labels (--label-key, or fields.label in datasets.yaml)"
        if cls.needs_batch and entry.fields.batch is None:
            return "it needs batches (--batch-key, or fields.batch in datasets.yaml)"
        return None

    @staticmethod
    def primary_id(suite: MetricSuite, params: BaseModel) -> str | None:
        """The outcome id that ranks the leaderboard (tasks that rename suite ids override this)."""
        return suite.primary

    @staticmethod
    def score(suite: MetricSuite, inputs: MetricInputs) -> list[Outcome]:
        outcomes = evaluate_suite(suite, inputs)
        return outcomes + compute_aggregates(suite, outcomes)


class EmbeddingTask(Task):
    """Scores one embedding: the runner embeds the dataset with each model (adapter) and calls
    ``run`` once per (dataset, model, seed)."""

    # True: run() also takes ``neighbors`` (the embedding's NeighborGraph, one kNN search shared by tasks)
    shares_neighbors: ClassVar[bool] = False
    # True: run() also takes ``cell_outputs`` (the model's CellOutputs: labels it saw, its own predictions)
    reads_cell_outputs: ClassVar[bool] = False

    def run(self, data: TaskData, embedding: np.ndarray, *, params: BaseModel, seed: int, suite: MetricSuite) -> list[Outcome]:
        raise NotImplementedError


@dataclass
class DirectResult:
    outcomes: dict[str, list[Outcome]]  # model -> outcomes
    table: Any  # pandas DataFrame, written beside the records (e.g. one row per (fold, perturbation, model))
    info: dict
    # model -> the records' Timings fields the task measured for it (e.g. a fine-tuned model's training +
    # prediction seconds as embed_s, and its peak memory), so the leaderboard's efficiency columns show them
    timings: dict[str, dict] = field(default_factory=dict)


class DirectTask(Task):
    """Reads the dataset itself; its "models" are its own predictors (names it parses), some of which
    may use an adapter's ``gene_embeddings``. The runner calls ``run_direct`` once per (dataset, seed)
    with all the predictors, so they share folds and paired statistics."""

    needs_label: ClassVar[bool] = False
    # True: ``embedders`` maps each adapter key to the loaded adapter itself (a task that trains through
    # the model, e.g. annotation_finetune), not to its ``gene_embeddings``
    takes_adapters: ClassVar[bool] = False

    @staticmethod
    def load(adata: "AnnData", *, name: str, entry: DatasetEntry, params: BaseModel) -> Any:
        """Validate and prepare the dataset (bad input raises before anything runs); the result is
        handed back to ``run_direct`` as ``prepared``."""
        raise NotImplementedError

    @classmethod
    def check_models(cls, models: list[str], params: BaseModel, adapters: set[str]) -> None:
        """Raise ConfigError naming the known predictors when one of ``models`` is not one;
        ``adapters``: the adapter keys with a ``gene_embeddings`` method."""
        raise NotImplementedError

    @classmethod
    def adapter_embeddings(cls, models: list[str], params: BaseModel) -> set[str]:
        """Adapter keys whose ``gene_embeddings`` the runner must load and pass as ``embedders``."""
        return set()

    @classmethod
    def models_using(cls, models: list[str], adapter: str) -> list[str]:
        """The predictors that depend on ``adapter`` (they fail with it when it cannot load)."""
        return [m for m in models if m == adapter]

    @staticmethod
    def model_kind(model: str, params: BaseModel) -> str | None:
        """The predictor's kind for the leaderboard (baseline, control, ceiling, …); None: its adapter's."""
        return None

    def run_direct(self, adata: "AnnData", *, name: str, entry: DatasetEntry, models: list[str], params: BaseModel,
                   seed: int, suite: MetricSuite, embedders: dict | None = None, prepared: Any = None) -> DirectResult:
        raise NotImplementedError
