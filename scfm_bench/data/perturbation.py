"""Perturbation screens: condition labels -> target sets, values -> log1p-normalised, small conditions dropped.

Reads the layouts people bring: GEARS-processed (``condition`` with ``ctrl`` / ``A+ctrl`` / ``A+B``),
scPerturb (``perturbation`` / ``control``) and PerturBench (``condition`` / ``control``). Labels are
normalised so ``ctrl+A`` and ``A+ctrl`` mean ``A`` and ``B+A`` means ``A+B``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from scfm_bench.config.schemas import PerturbationFields
from scfm_bench.exceptions import DataError

if TYPE_CHECKING:
    import scipy.sparse as sp
    from anndata import AnnData

logger = logging.getLogger(__name__)

AUTO_KEYS = ("perturbation", "condition", "gene", "target_gene")
CONTROL = "control"
_OTHER_DELIMS = ("+", "_", ",", ";", "|", "/", ":", "-")
_FLAG_FIX = "set perturbation.{key} in datasets.yaml (or the perturbation task's {param} param)"


@dataclass
class PerturbationData:
    """One cellular context of a screen, ready for pseudobulking.

    ``X`` is log1p(normalize_total(counts, 1e4)) as CSR float32 (or the file's values when they
    already were log-normalised); ``conditions`` holds each cell's normalised label (``control``,
    ``A``, ``A+B``).
    """

    X: "sp.csr_matrix"
    genes: np.ndarray
    conditions: np.ndarray
    values: str  # "counts" (normalised here) or "log1p" (as given)
    key: str
    dropped_conditions: dict[str, int] = field(default_factory=dict)
    n_genes_dropped: int = 0
    unmeasured_targets: list[str] = field(default_factory=list)

    def targets(self, condition: str) -> tuple[str, ...]:
        return tuple(condition.split("+"))

    @property
    def perturbations(self) -> list[str]:
        return sorted(set(self.conditions) - {CONTROL})

    def summary(self) -> dict:
        return {"perturbation_key": self.key, "values": self.values, "n_cells": int(self.X.shape[0]),
                "n_genes": int(self.X.shape[1]), "n_conditions": len(self.perturbations),
                "n_control_cells": int((self.conditions == CONTROL).sum()),
                "dropped_conditions": dict(sorted(self.dropped_conditions.items())),
                "n_genes_dropped": self.n_genes_dropped, "unmeasured_targets": self.unmeasured_targets}


def load_perturbation(adata: AnnData, *, name: str, fields: PerturbationFields, min_cells: int = 20,
                      min_gene_total: float = 5, context_key: str | None = "cell_type",
                      context: str | None = None) -> PerturbationData:
    """Validate and normalise a perturbation screen; every problem names the dataset, the key and the fix."""
    obs = adata.obs
    adata = _select_context(adata, name=name, context_key=context_key, context=context)
    key = fields.key or next((k for k in AUTO_KEYS if k in obs), None)
    if key is None or key not in obs:
        raise DataError(
            f"dataset {name!r}: no perturbation column {'(looked for ' + ', '.join(AUTO_KEYS) + ')' if key is None else repr(key)} "
            f"in obs (columns: {list(obs.columns)}). Fix: {_FLAG_FIX.format(key='key', param='perturbation_key')}.")
    raw = adata.obs[key].astype(str).to_numpy()
    conditions = normalise_labels(raw, name=name, key=key, fields=fields)

    X, values = _log_normalised(adata.X, name=name, values=fields.values)
    keep_genes = _expressed_genes(adata.X if values == "counts" else X, values, min_gene_total)
    genes = adata.var_names.astype(str).to_numpy()
    n_dropped_genes = int((~keep_genes).sum())

    labels, sizes = np.unique(conditions, return_counts=True)
    small = {str(lab): int(n) for lab, n in zip(labels, sizes) if lab != CONTROL and n < min_cells}
    if small:
        logger.warning("dataset %r: dropping %d conditions with fewer than %d cells (%s)", name, len(small), min_cells,
                       ", ".join(f"{k} ({v})" for k, v in list(small.items())[:10]))
    keep_cells = ~np.isin(conditions, list(small))
    remaining = sorted(set(conditions[keep_cells]) - {CONTROL})
    if len(remaining) < 2:
        raise DataError(
            f"dataset {name!r}: {len(remaining)} perturbation condition(s) with at least {min_cells} cells in obs[{key!r}] "
            f"(found {', '.join(map(repr, remaining)) or 'only controls'}; dropped as too small: {len(small)}). The task "
            f"predicts held-out perturbations and needs several. Fix: use a screen with more conditions, or lower the "
            f"perturbation task's min_cells param.")
    if not keep_cells.all():
        X = X[keep_cells]
    if not keep_genes.all():
        X = X[:, keep_genes]
    genes = genes[keep_genes]
    measured = set(genes)
    targets = sorted({t for c in remaining for t in c.split("+")})
    unmeasured = [t for t in targets if t not in measured]
    if unmeasured:
        logger.warning("dataset %r: %d of %d target genes are not measured (%s): lin_pca falls back to the mean "
                       "for them, and target-gene exclusion has nothing to exclude", name, len(unmeasured),
                       len(targets), ", ".join(unmeasured[:10]))
    return PerturbationData(X=X.tocsr(), genes=genes, conditions=conditions[keep_cells], values=values, key=key,
                            dropped_conditions=small, n_genes_dropped=n_dropped_genes, unmeasured_targets=unmeasured)


def _select_context(adata: AnnData, *, name: str, context_key: str | None, context: str | None) -> AnnData:
    if not context_key or context_key not in adata.obs:
        if context is not None:
            raise DataError(f"dataset {name!r}: context {context!r} given, but obs has no column {context_key!r}. "
                            f"Fix: set the perturbation task's context_key param to one of {list(adata.obs.columns)}.")
        return adata
    values = adata.obs[context_key].astype(str)
    found = sorted(values.unique())
    if context is None:
        if len(found) > 1:
            raise DataError(f"dataset {name!r}: obs[{context_key!r}] holds {len(found)} cellular contexts ({', '.join(found[:10])}); "
                            f"the perturbation task scores one context at a time. Fix: set the task's context param to one of them.")
        return adata
    if context not in found:
        raise DataError(f"dataset {name!r}: context {context!r} is not in obs[{context_key!r}] (found: {', '.join(found[:20])}). "
                        f"Fix: set the task's context param to one of them.")
    return adata[(values == context).to_numpy()]


def normalise_labels(raw: np.ndarray, *, name: str, key: str, fields: PerturbationFields) -> np.ndarray:
    """``ctrl`` -> ``control``; ``A+ctrl`` / ``ctrl+A`` -> ``A``; ``B+A`` -> ``A+B`` (members sorted)."""
    controls = set(fields.control_labels)
    uniq = np.unique(raw)
    if not controls & set(uniq):
        counts = {u: int((raw == u).sum()) for u in uniq}
        common = sorted(counts, key=counts.get, reverse=True)[:15]
        raise DataError(
            f"dataset {name!r}: none of the control labels {sorted(controls)} occurs in obs[{key!r}]. Labels found "
            f"(most frequent first): {', '.join(map(repr, common))}. Fix: "
            f"{_FLAG_FIX.format(key='control_labels', param='control_label')} to the label of the control cells.")
    mapping = {}
    for label in uniq:
        members = sorted({m.strip() for m in label.split(fields.combo_delim)} - controls - {""})
        mapping[label] = "+".join(members) if members else CONTROL
    _check_combo_syntax(set(mapping.values()) - {CONTROL}, name=name, key=key, delim=fields.combo_delim)
    return np.array([mapping[label] for label in raw], dtype=object)


def _check_combo_syntax(labels: set[str], *, name: str, key: str, delim: str) -> None:
    """A label made of two other labels joined by a different separator is a combo in another syntax."""
    singles = {lab for lab in labels if "+" not in lab}
    for other in _OTHER_DELIMS:
        if other == delim:
            continue
        for lab in sorted(labels):
            parts = [p for p in re.split(re.escape(other), lab) if p]
            if len(parts) >= 2 and all(p in singles for p in parts):
                raise DataError(
                    f"dataset {name!r}: obs[{key!r}] label {lab!r} looks like a combination of {parts} written with "
                    f"{other!r}, but the combo delimiter is {delim!r}. Fix: "
                    f"{_FLAG_FIX.format(key='combo_delim', param='combo_delim')} to {other!r}.")


def _log_normalised(X, *, name: str, values: str):
    """(log1p-normalised CSR float32, what X held). Counts are normalised to 1e4 per cell and log1p'd."""
    import scipy.sparse as sp

    X = sp.csr_matrix(X, dtype=np.float32)
    data = X.data
    if not np.isfinite(data).all() or (data < 0).any():
        raise DataError(f"dataset {name!r}: X holds negative or non-finite values; neither counts nor log1p data. "
                        f"Fix: store raw counts or log1p(normalised) values in X.")
    integer = bool(np.all(data[: 1 << 22] == np.floor(data[: 1 << 22])))
    if values == "auto":
        values = "counts" if integer else "log1p"
    elif values == "counts" and not integer:
        raise DataError(f"dataset {name!r}: perturbation.values is 'counts' but X holds non-integer values. "
                        f"Fix: set perturbation.values to 'log1p' (or 'auto') if X is already log-normalised.")
    if values == "log1p":
        return X, values
    return log_normalise(X), values


def log_normalise(counts, *, chunk_nnz: int = 1 << 22):
    """log1p(normalize_total(counts, 1e4)) as a new CSR float32, in row chunks so that the float64
    temporaries stay small whatever the matrix size (the values equal a whole-matrix float64 pass)."""
    import scipy.sparse as sp

    out = sp.csr_matrix(counts, dtype=np.float32, copy=True)
    totals = np.asarray(out.sum(axis=1)).ravel()
    scale = np.divide(1e4, totals, out=np.zeros_like(totals, dtype=np.float64), where=totals > 0)
    for lo, hi in row_chunks(out.indptr, chunk_nnz):
        a, b = out.indptr[lo], out.indptr[hi]
        out.data[a:b] = np.log1p(out.data[a:b] * np.repeat(scale[lo:hi], np.diff(out.indptr[lo:hi + 1])))
    return out


def row_chunks(indptr: np.ndarray, chunk_nnz: int) -> list[tuple[int, int]]:
    """Row ranges [lo, hi) of a CSR matrix holding about ``chunk_nnz`` stored values each."""
    n = len(indptr) - 1
    cuts = np.unique(np.r_[0, np.searchsorted(indptr, np.arange(chunk_nnz, indptr[-1], chunk_nnz), side="right") - 1, n])
    cuts = cuts[(cuts >= 0) & (cuts <= n)]
    return [(int(lo), int(hi)) for lo, hi in zip(cuts[:-1], cuts[1:]) if hi > lo]


def _expressed_genes(X, values: str, min_total: float) -> np.ndarray:
    """Counts: total count > min_total (PertEval's Norman filter). Log data: detected in > min_total cells."""
    if values == "counts":
        return np.asarray(X.sum(axis=0)).ravel() > min_total
    detected = X.indices if (X.data > 0).all() else X.indices[X.data > 0]
    return np.bincount(detected, minlength=X.shape[1]) > min_total
