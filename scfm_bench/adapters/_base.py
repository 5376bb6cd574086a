"""The Adapter contract. Adapters only turn data into embeddings: device placement, batching,
precision, caching, validation and timing belong to scfm_bench.embed.

Baselines that need the whole dataset at once (PCA, Harmony, scVI) return ``whole_dataset(adata)``
from ``prepare``: a single item that ``embed_batch`` turns into the full matrix. Per-cell models
(the scFMs) return one item per cell with ``lengths`` so the engine can bucket by sequence length.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np
    from anndata import AnnData


class InputSpec(BaseModel):
    """What a model needs from a dataset."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gene_id_namespace: Literal["symbol", "ensembl", "any"] = "any"
    raw_counts: bool = False
    organism: str = "any"
    max_genes: int | None = None
    needs_gpu: bool = False  # a batch job of this model asks for one GPU (--slurm-gpus overrides)
    needs_batch: bool = False
    needs_label: bool = False
    # trains on the labels the annotation task scores (scANVI): the runner passes which cells' labels it
    # saw, and protocols that would test on those cells skip it (leakage)
    uses_labels: bool = False
    mem_gb: int = 8  # host memory a job of this model needs at ~10^5 cells (Slurm --mem; --slurm-mem overrides)


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Prepared:
    """Tokenised input: ``collate(dataset[i:j])`` is what ``embed_batch`` receives."""

    dataset: Sequence[Any]
    collate: Callable[[list[Any]], Any]
    n_cells: int
    lengths: Sequence[int] | None = None  # tokens per item, for length-bucketed batching
    whole: bool = False  # one item = the whole dataset (transductive baselines)


def whole_dataset(adata: "AnnData") -> Prepared:
    return Prepared(dataset=[adata], collate=lambda items: items[0], n_cells=adata.n_obs, whole=True)


class Adapter:
    """Base class. Subclasses set the metadata and implement prepare/embed_batch (load if stateful).

    ``params`` are validated by the subclass's ``Params`` model (``--model-param KEY.NAME=VALUE``);
    ``seed`` drives every random choice the adapter makes.
    """

    key: ClassVar[str]
    display_name: ClassVar[str]
    version: ClassVar[str] = "1"
    weights_id: ClassVar[str | None] = None
    licence: ClassVar[str] = "BSD-3-Clause"
    # what the leaderboard may rank: "control" (negative) and "ceiling" (positive) rows are references, never ranked
    kind: ClassVar[Literal["baseline", "control", "ceiling", "scfm", "external"]] = "baseline"
    description: ClassVar[str] = ""
    input_spec: ClassVar[InputSpec] = InputSpec()
    Params: ClassVar[type[BaseModel]] = NoParams
    torch_forward: ClassVar[bool] = False  # embed_batch is a torch forward: the engine adds inference_mode/autocast
    token_budget: ClassVar[int | None] = None  # padded tokens per batch for length-bucketed batching
    # "knn_graph": embed_batch returns a kNN graph packed as [indices | distances] (n_cells x 2k; see
    # metrics._neighbors.pack_knn), not an embedding; only tasks that take a graph score it (BBKNN)
    output: ClassVar[Literal["embedding", "knn_graph"]] = "embedding"

    def __init__(self, params: BaseModel | dict | None = None, *, seed: int = 0, model_dir: "Path | None" = None) -> None:
        self.params = params if isinstance(params, BaseModel) else self.Params.model_validate(params or {})
        self.seed = seed
        self.device = "cpu"
        self.model_dir = model_dir  # SCFM_BENCH_MODEL_DIR: checkpoints in <model_dir>/<key>
        self.run_info: dict[str, Any] = {}  # facts found while embedding (e.g. gene matching), kept in records
        # per-cell side outputs, cached with the embedding, never in records: "labels_seen" (indices of the
        # cells whose labels the model trained on) and "predictions" (its own label per cell)
        self.cell_outputs: dict[str, list] = {}

    def check(self, adata: "AnnData") -> None:
        """Raise ConfigError before anything runs if this model cannot use ``adata`` as configured."""

    def load(self, device: str) -> None:
        """Load weights onto ``device``; baselines have nothing to load."""
        self.device = device

    def prepare(self, adata: "AnnData") -> Prepared:
        return whole_dataset(adata)

    def embed_batch(self, batch: Any) -> "np.ndarray":
        raise NotImplementedError

    # -- helpers shared by baselines --------------------------------------------------------------
    def record_params(self) -> dict[str, Any]:
        """Parameters that identify the embedding (cache key and records)."""
        return self.params.model_dump(mode="json")


def obs_column(adata: "AnnData", role: Literal["label", "batch", "ontology_id"], model: str) -> "np.ndarray":
    """The label, batch or Cell Ontology id column the runner declared in ``uns["scfm_bench_fields"]``."""
    from scfm_bench.exceptions import CellSkipped

    key = adata.uns.get("scfm_bench_fields", {}).get(role)
    if key is None or key not in adata.obs:
        raise CellSkipped(f"model {model!r} needs a {role} column, and the dataset declares none (set fields.{role} or --{role}-key).")
    return adata.obs[key].astype(str).to_numpy()


def require(module: str, extra: str, model: str):
    """Import an optional dependency or say which extra installs it."""
    import importlib

    from scfm_bench.exceptions import MissingDependencyError

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(
            f"model {model!r} needs the Python package {module!r} ({e}). Install it with: pip install 'scfm-bench[{extra}]'"
        ) from None


class GeneAdapter(Adapter):
    """An adapter that embeds genes only (``gene_embeddings``), for gene-level tasks (gene_function)."""

    def check(self, adata: "AnnData") -> None:
        from scfm_bench.exceptions import ConfigError

        raise ConfigError(f"model {self.key!r} embeds genes, not cells: use it with --task gene_function.")

    def prepare(self, adata: "AnnData") -> Prepared:
        self.check(adata)
        raise AssertionError("unreachable")

    def gene_embeddings(self, genes: "Sequence[str]", *, adata: "AnnData | None" = None) -> "np.ndarray":
        raise NotImplementedError
