"""What every foundation-model adapter shares: finding its checkpoint folder, raw counts, and the
gene-id gate that maps dataset genes onto the model's vocabulary.

A missing checkpoint is a skipped cell (never a crash of the run), reported with the exact files
expected. The gene gate fails a cell when too few counts fall on model genes: the guard against
embedding data in the wrong gene namespace and publishing near-zero scores.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from scfm_bench.adapters._base import Adapter, Prepared
from scfm_bench.exceptions import CellFailed, CellSkipped

if TYPE_CHECKING:
    import scipy.sparse as sp
    from anndata import AnnData

log = logging.getLogger(__name__)

_ENSEMBL = re.compile(r"^ENS[A-Z]*G\d{6,}(\.\d+)?$", re.IGNORECASE)
# var columns that commonly hold the other namespace (CELLxGENE, 10x, scanpy conventions)
_GENE_COLUMNS = ("gene_symbol", "feature_name", "gene_name", "gene_symbols", "symbol", "ensembl_id", "feature_id", "gene_ids",
                 "gene_id")


class ScfmParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    checkpoint: str | None = Field(None, description="Folder with the model's files (default: <SCFM_BENCH_MODEL_DIR>/<model>).")
    max_unmatched_fraction: float = Field(
        0.5, ge=0, le=1, description="Fail when more than this fraction of the counts falls on genes the model does not know.")


class ScfmAdapter(Adapter):
    """Base for scFMs. ``required_files``: each entry lists alternatives, one of which must exist."""

    kind = "scfm"
    torch_forward = True
    required_files: ClassVar[tuple[tuple[str, ...], ...]] = ()
    gene_namespace: ClassVar[str] = "symbol"

    # -- checkpoint ------------------------------------------------------------------------------
    def checkpoint_dir(self) -> Path | None:
        if self.params.checkpoint:
            return Path(self.params.checkpoint).expanduser()
        return Path(self.model_dir).expanduser() / self.key if self.model_dir else None

    def missing_files(self, folder: Path) -> list[str]:
        return [" or ".join(alts) for alts in self.required_files if not any((folder / a).exists() for a in alts)]

    def checkpoint_status(self) -> str:
        folder = self.checkpoint_dir()
        if folder is None:
            return "missing (no --checkpoint and no SCFM_BENCH_MODEL_DIR)"
        missing = self.missing_files(folder) if folder.is_dir() else ["the folder itself"]
        return f"found: {folder}" if not missing else f"missing in {folder}: {', '.join(missing)}"

    def require_checkpoint(self) -> Path:
        """The checkpoint folder, or CellSkipped naming every file expected."""
        folder = self.checkpoint_dir()
        expected = ", ".join(" or ".join(a) for a in self.required_files)
        how = (f"Fix: pass --checkpoint {self.key}=FOLDER or put the files in $SCFM_BENCH_MODEL_DIR/{self.key}/ "
               f"(expected files: {expected}).")
        if folder is None:
            raise CellSkipped(f"model {self.key!r}: no checkpoint configured. {how}")
        if not folder.is_dir():
            raise CellSkipped(f"model {self.key!r}: checkpoint folder {folder} does not exist. {how}")
        missing = self.missing_files(folder)
        if missing:
            raise CellSkipped(f"model {self.key!r}: checkpoint folder {folder} lacks {', '.join(missing)}. {how}")
        return folder

    def variant(self) -> str:
        """Which variant this configuration runs (shown by ``list models``)."""
        return "-"

    def record_params(self) -> dict[str, Any]:
        folder = self.checkpoint_dir()
        return {**super().record_params(), "checkpoint": str(folder.resolve()) if folder else None}

    def gene_embeddings(self, genes: list[str]) -> np.ndarray:
        """Rows of the model's gene-token table for ``genes`` (NaN rows for genes it does not know)."""
        table, index = self._gene_table()
        out = np.full((len(genes), table.shape[1]), np.nan, dtype=np.float32)
        for i, g in enumerate(genes):
            if (j := index.get(g, index.get(str(g).upper()))) is not None:
                out[i] = table[j]
        return out

    def _gene_table(self) -> tuple[np.ndarray, Mapping[str, int]]:
        raise NotImplementedError


@dataclass
class TrainableEncoder:
    """What fine-tuning needs from a model: ``forward(body, prepared.collate(items))`` gives (cells, dim)
    vectors with gradients through ``body`` (the loaded torch module; callers copy it before training),
    and ``lora_targets`` is a regex over ``body``'s module names naming the layers LoRA adapts."""

    body: Any
    forward: Any
    prepared: "Prepared"
    lora_targets: str


class Finetunable:
    """Mixin of scFM adapters that can be fine-tuned (annotation_finetune): they define ``lora_targets``,
    ``_body()`` (the loaded module) and ``_forward(body, batch)``, the cell vector ``embed_batch`` is
    computed from (before any normalisation), so training and embedding share one forward."""

    lora_targets: ClassVar[str]

    def trainable_encoder(self, adata: "AnnData") -> TrainableEncoder:
        return TrainableEncoder(self._body(), self._forward, self.prepare(adata), self.lora_targets)


def raw_counts(adata: "AnnData", model: str) -> "sp.csr_matrix":
    """The raw counts (``layers['counts']`` after preprocessing, else X) as float32 CSR; integers required."""
    import scipy.sparse as sp

    X = adata.layers["counts"] if "counts" in adata.layers else adata.X
    X = sp.csr_matrix(X, dtype=np.float32)
    if X.nnz and (np.any(X.data < 0) or np.any(X.data != np.floor(X.data))):
        raise CellFailed(f"model {model!r} needs raw integer counts, but the counts hold negative or fractional values. "
                         f"Fix: point fields.counts_layer (--counts-layer) at raw counts, or set --round-counts.")
    return X


def guess_namespace(ids) -> str:
    ids = [str(i) for i in list(ids)[:2000]]
    share = np.mean([bool(_ENSEMBL.match(i)) for i in ids]) if ids else 0.0
    return "Ensembl ids" if share > 0.5 else "gene symbols"


def normalise_id(gene: str) -> str:
    """Ensembl ids lose their version suffix and are upper-cased; symbols are kept as they are."""
    gene = str(gene)
    return gene.split(".")[0].upper() if _ENSEMBL.match(gene) else gene


@dataclass
class GeneMatch:
    counts: "sp.csr_matrix"  # cells x matched model genes (duplicates summed)
    model_genes: list[str]  # vocabulary keys, one per column
    info: dict[str, Any]


def match_genes(adata: "AnnData", counts: "sp.csr_matrix", vocab: Mapping[str, Any], *, model: str, expected: str,
                max_unmatched: float, symbol_to_model: Mapping[str, str] | None = None) -> GeneMatch:
    """Map dataset genes onto ``vocab`` from var_names or a var column (whichever matches most counts),
    optionally through ``symbol_to_model`` (a table from the model folder); genes landing on the same
    model gene are summed. Fails the cell when more than ``max_unmatched`` of the counts are unmatched."""
    import scipy.sparse as sp

    sources = {"var_names": adata.var_names.to_numpy()}
    sources |= {f"var[{c!r}]": adata.var[c].to_numpy() for c in _GENE_COLUMNS if c in adata.var}
    gene_totals = np.asarray(counts.sum(axis=0)).ravel()
    total = float(gene_totals.sum()) or 1.0
    best = None
    for name, ids in sources.items():
        mapped = []
        for g in ids:
            g = normalise_id(g) if isinstance(g, str) else None
            if g is not None and g not in vocab and symbol_to_model is not None:
                g = symbol_to_model.get(g)
            mapped.append(g if g in vocab else None)
        hit = np.array([m is not None for m in mapped])
        frac = float(gene_totals[hit].sum() / total)
        if best is None or frac > best[2]:
            best = (name, mapped, frac, hit)
    name, mapped, frac, hit = best
    n_genes = len(mapped)
    info = {"gene_id_source": name, "genes_total": n_genes, "genes_matched": int(hit.sum()),
            "matched_count_fraction": round(frac, 6)}
    if 1 - frac > max_unmatched:
        raise CellFailed(
            f"model {model!r} expects {expected}, but only {frac:.1%} of the counts ({int(hit.sum())} of {n_genes} genes) "
            f"fall on its vocabulary; the dataset's gene ids look like {guess_namespace(adata.var_names)} "
            f"(e.g. {', '.join(map(str, adata.var_names[:3]))}). Fix: set fields.gene_ids to a var column holding {expected}, "
            f"or provide the model's symbol/Ensembl table in its checkpoint folder.")
    cols = list(dict.fromkeys(m for m in mapped if m is not None))  # first-seen (var) order
    col_of = {g: j for j, g in enumerate(cols)}
    rows = np.flatnonzero(hit)
    M = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, [col_of[mapped[r]] for r in rows])), shape=(n_genes, len(cols)))
    info["genes_collapsed"] = int(len(rows) - len(cols))
    if info["genes_collapsed"]:
        log.warning("model %s: %d dataset genes map onto an already-mapped model gene; their counts are summed",
                    model, info["genes_collapsed"])
    log.info("model %s: %d/%d genes matched (%s), %.1f%% of counts", model, len(rows), n_genes, name, 100 * frac)
    return GeneMatch(sp.csr_matrix(counts @ M), cols, info)


def cell_entries(X: "sp.csr_matrix") -> list[tuple[np.ndarray, np.ndarray]]:
    """Per cell, the columns (ascending: var order) and values of its nonzero counts; explicit zeros dropped."""
    X = X.copy()
    X.eliminate_zeros()
    X.sort_indices()
    return [(X.indices[a:b], X.data[a:b]) for a, b in zip(X.indptr[:-1], X.indptr[1:])]


def strict_state_dict(model: str, module, state: Mapping[str, Any], *, ignore_prefixes: tuple[str, ...] = (),
                      assign: bool = False) -> None:
    """Load ``state`` into ``module``: every module key must be present with its shape (CellFailed naming
    the first missing/mismatched keys); extra keys are allowed only under ``ignore_prefixes`` (training heads).
    ``assign``: take the checkpoint's tensors as they are (a module built on the meta device, so a
    multi-GB table is never allocated twice)."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in own.items() if k in state and state[k].shape != v.shape]
    extra = [k for k in state if k not in own and not k.startswith(ignore_prefixes)]
    if missing or wrong:
        raise CellFailed(f"model {model!r}: the checkpoint does not fit the architecture: "
                         + "; ".join(filter(None, [missing and f"missing keys {missing[:5]}", wrong and f"wrong shapes {wrong[:5]}"]))
                         + ". Is this the right model's checkpoint?")
    if extra:
        log.warning("model %s: ignoring %d unexpected checkpoint keys, e.g. %s", model, len(extra), extra[:3])
    module.load_state_dict({k: state[k] for k in own}, strict=True, assign=assign)
