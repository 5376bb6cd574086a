"""Checks on loaded data: the generic ones every dataset passes at load, and what a task needs.

Each failure is a DataError naming the dataset, the offending key or file, and the fix.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from scfm_bench.config.schemas import FieldMap
from scfm_bench.data.read import COUNTS_FIX
from scfm_bench.exceptions import DataError

if TYPE_CHECKING:
    import pandas as pd
    from anndata import AnnData

    from scfm_bench.data.load import LoadedDataset

logger = logging.getLogger(__name__)

_CHUNK = 1 << 24  # values per scan step: bounds the temporaries on matrices with 10^9 stored values
# Telling counts deposited as non-integers from log-transformed or normalised values (see _transformed_evidence):
_MOSTLY_FRACTIONAL = 0.5  # share of stored values: below it, the data keep a count scale
_LOG_SCALE_MAX = 30.0  # log1p, log2(x+1) of CPM, ... stay below; a real count matrix holds larger values
_CONSTANT_TOTAL_RTOL = 1e-3  # sd / mean of cells' totals under which they count as normalised to one total
_SAMPLE_CELLS = 2000  # cells whose totals are inspected (evenly spaced through the matrix)
_CL_PATTERN = r"CL:\d{7}"
_FIELD_FLAGS = {"label": "--label-key", "batch": "--batch-key", "ontology_id": "--ontology-key",
                "continuous": "a datasets.yaml entry"}


def check_counts(adata: AnnData, *, name: str, counts_layer: str, non_integer: str = "refuse") -> None:
    """X must hold finite, non-negative integers (raw counts), not normalised or log values.

    With ``non_integer="round"`` (an explicit opt-in in the field map) fractional counts are rounded
    and the number of changed values is logged and kept in ``uns["scfm_bench_counts_rounded"]``.
    Rounding is only for counts deposited as non-integers: values that look log-transformed or
    normalised are refused whatever the setting, since rounding them cannot recover counts.
    """
    data = adata.X.data
    found, example, vmax = _scan_values(data)
    if found["negative"] or found["non-finite"]:
        raise DataError(_not_counts(name, counts_layer, found, data.size, example) + ".")
    if not found["fractional"]:
        return
    transformed = _transformed_evidence(adata.X, share=found["fractional"] / data.size, vmax=vmax)
    if transformed:
        rounding = ("Rounding (--round-counts, fields.non_integer_counts: round) is only for counts deposited as "
                    "non-integers; it cannot recover counts from these. " if non_integer == "round" else "")
        raise DataError(
            f"dataset {name!r}: counts layer {counts_layer!r} looks log-transformed or normalised, not raw counts: "
            f"{found['fractional']:,} of {data.size:,} stored values ({found['fractional'] / data.size:.0%}) are fractional "
            f"(e.g. {example!r}) and {transformed}. {rounding}"
            f"Fix: {COUNTS_FIX} (raw counts are often kept in layers['counts'] or raw.X)."
        )
    if non_integer == "round":
        logger.warning("dataset %r: rounding %d non-integer counts (fields.non_integer_counts: round)", name,
                       found["fractional"])
        data[:] = np.floor(data + 0.5)
        adata.uns["scfm_bench_counts_rounded"] = found["fractional"]
        return
    raise DataError(
        _not_counts(name, counts_layer, found, data.size, example) + "; or, for counts deposited as non-integers "
        "(a count scale with some fractional values, as some plate-based protocols deposit them), set "
        "fields.non_integer_counts: round (--round-counts)."
    )


def _scan_values(data: np.ndarray) -> tuple[dict[str, int], float | None, float]:
    """Counts of negative, non-finite and fractional values, an example (a negative or non-finite one
    first), and the largest finite value."""
    found = {"negative": 0, "non-finite": 0, "fractional": 0}
    examples: dict[str, float] = {}
    vmax = -np.inf
    integer = np.issubdtype(data.dtype, np.integer)
    for start in range(0, data.size, _CHUNK):
        chunk = data[start : start + _CHUNK]
        kinds = {"negative": chunk < 0}
        if not integer:
            finite = np.isfinite(chunk)
            kinds |= {"non-finite": ~finite, "fractional": finite & (chunk != np.floor(chunk))}
            vmax = max(vmax, float(chunk[finite].max(initial=-np.inf)))
        for kind, bad in kinds.items():
            n_bad = int(bad.sum())
            found[kind] += n_bad
            if n_bad and kind not in examples:
                examples[kind] = chunk[np.argmax(bad)].item()
    return found, next((examples[k] for k in found if k in examples), None), vmax


def _not_counts(name: str, counts_layer: str, found: dict[str, int], size: int, example) -> str:
    what = ", ".join(f"{n:,} {kind}" for kind, n in found.items() if n)
    return (
        f"dataset {name!r}: counts layer {counts_layer!r} does not hold raw integer counts: {what} of {size:,} stored "
        f"values (e.g. {example!r}). Models and baselines here need raw counts, not normalised or log values. "
        f"Fix: {COUNTS_FIX}"
    )


def _transformed_evidence(X, *, share: float, vmax: float) -> str | None:
    """Why mostly-fractional values look log-transformed or normalised rather than counts (None: they do not).

    Counts deposited as non-integers keep a count scale: cells' totals vary with sequencing depth and
    the largest values run into the hundreds. Normalised values share one total per cell (also after
    expm1 for log1p data), and log-scale values stay below ``_LOG_SCALE_MAX``.
    """
    if share < _MOSTLY_FRACTIONAL:
        return None
    rows = X[np.unique(np.linspace(0, X.shape[0] - 1, min(X.shape[0], _SAMPLE_CELLS)).astype(int))]
    totals = _constant_total(rows)
    if totals is not None:
        return f"every cell's values sum to {totals:,.6g} (normalised to a constant total per cell)"
    if vmax <= _LOG_SCALE_MAX:
        rows = rows.astype(np.float64)
        rows.data = np.expm1(rows.data)
        totals = _constant_total(rows)
        if totals is not None:
            return (f"expm1 of every cell's values sums to {totals:,.6g} (log1p of counts normalised to a constant "
                    f"total per cell), the largest value being {vmax:.4g}")
        return f"the largest value is {vmax:.4g}, a log scale (counts of real cells run far higher)"
    return None


def _constant_total(rows) -> float | None:
    totals = np.asarray(rows.sum(axis=1), dtype=np.float64).ravel()
    totals = totals[totals > 0]
    if totals.size < 2 or totals.std() > _CONSTANT_TOTAL_RTOL * totals.mean():
        return None
    return float(totals.mean())


def set_gene_ids(adata: AnnData, *, name: str, fields: FieldMap) -> None:
    """Make var_names the gene ids named by ``fields.gene_ids`` and require them unique."""
    where = "var_names"
    if fields.gene_ids != "var_names":
        where = f"var[{fields.gene_ids!r}]"
        if fields.gene_ids not in adata.var:
            raise DataError(
                f"dataset {name!r}: fields.gene_ids is {fields.gene_ids!r}, but var has no such column "
                f"(var columns: {list(adata.var.columns)}). Fix: set fields.gene_ids to one of them or to 'var_names'."
            )
        ids = adata.var[fields.gene_ids]
        if ids.isna().any():
            raise DataError(
                f"dataset {name!r}: {int(ids.isna().sum())} genes have no id in {where}. Fix: drop those genes "
                f"from the file, or use var_names or another var column as fields.gene_ids."
            )
        adata.var["var_names_original"] = adata.var_names
        adata.var_names = ids.astype(str).to_numpy()
    dup = adata.var_names[adata.var_names.duplicated()].unique()
    if len(dup):
        raise DataError(
            f"dataset {name!r}: {len(dup)} gene ids occur more than once in {where} (e.g. {list(dup[:5])}). "
            f"Fix: give every gene a unique id: key the dataset by a unique id column (fields.gene_ids, e.g. "
            f"Ensembl ids with gene_id_namespace: ensembl), or sum or drop the duplicated genes and save the file again."
        )


def check_obs_columns(adata: AnnData, *, name: str, fields: FieldMap) -> None:
    """Every obs column the field map names must exist (continuous ones numeric and finite); duplicated
    cell names are made unique."""
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    for key in ("label", "batch", "ontology_id"):
        col = getattr(fields, key)
        if col is not None and col not in adata.obs:
            raise DataError(_missing_column(name, key, col, adata.obs))
    for col in fields.continuous:
        if col not in adata.obs:
            raise DataError(_missing_column(name, "continuous", col, adata.obs))
        values = adata.obs[col]
        if not is_numeric_dtype(values) or is_bool_dtype(values):
            raise DataError(
                f"dataset {name!r}: fields.continuous names obs[{col!r}], which is not numeric (dtype {values.dtype}, "
                f"e.g. {values.iloc[0]!r}). Fix: store the property as numbers, or remove {col!r} from fields.continuous."
            )
        n_bad = int((~np.isfinite(values.to_numpy(dtype=float))).sum())
        if n_bad:
            raise DataError(
                f"dataset {name!r}: obs[{col!r}] (fields.continuous) has {n_bad} missing or infinite values. "
                f"Fix: fill them in or drop those cells, or remove {col!r} from fields.continuous."
            )
    if not adata.obs_names.is_unique:
        logger.warning("dataset %r: cell names are not unique; appending suffixes to make them so", name)
        adata.obs_names_make_unique()


def validate_fields(ds: LoadedDataset, *, need_label: bool, need_batch: bool, need_ontology: bool = False) -> None:
    """Check that ``ds`` has what a task needs; raise DataError naming the dataset, key and fix."""
    fields, obs = ds.entry.fields, ds.adata.obs
    if need_label:
        _column(ds.name, "label", fields.label, obs, "cell-type labels")
    if need_batch:
        batch = _column(ds.name, "batch", fields.batch, obs, "batch ids")
        if batch.isna().any():
            raise DataError(
                f"dataset {ds.name!r}: {int(batch.isna().sum())} cells have no batch in obs[{fields.batch!r}]. "
                f"Fix: fill in their batch or drop those cells."
            )
        sizes = batch.astype(str).value_counts()
        small = sizes[sizes < ds.entry.min_cells_per_batch]
        if len(small):
            listed = ", ".join(f"{b!r} ({n} cells)" for b, n in small.head(10).items())
            raise DataError(
                f"dataset {ds.name!r}: {len(small)} batches in obs[{fields.batch!r}] have fewer than "
                f"min_cells_per_batch={ds.entry.min_cells_per_batch} cells: {listed}. Fix: drop those cells or merge "
                f"those batches, or lower min_cells_per_batch for this dataset in datasets.yaml."
            )
    if need_ontology:
        ids = _column(ds.name, "ontology_id", fields.ontology_id, obs, "Cell Ontology ids").astype(str)
        bad = ids[~ids.str.fullmatch(_CL_PATTERN)].unique()
        if len(bad):
            raise DataError(
                f"dataset {ds.name!r}: obs[{fields.ontology_id!r}] holds values that are not Cell Ontology ids "
                f"(CL:nnnnnnn), e.g. {list(bad[:5])}. Fix: map every label to a CL id, or point fields.ontology_id "
                f"at the column that holds them."
            )


def _column(name: str, key: str, col: str | None, obs: pd.DataFrame, what: str) -> pd.Series:
    if col is None:
        raise DataError(
            f"dataset {name!r} has no fields.{key} (the obs column with {what}), and this task needs one. "
            f"Fix: set fields.{key} in datasets.yaml (or {_FIELD_FLAGS[key]} for your own file) to one of the "
            f"obs columns: {list(obs.columns)}."
        )
    if col not in obs:
        raise DataError(_missing_column(name, key, col, obs))
    return obs[col]


def _missing_column(name: str, key: str, col: str, obs: pd.DataFrame) -> str:
    return (
        f"dataset {name!r}: fields.{key} is {col!r}, but the data has no such obs column (obs columns: "
        f"{list(obs.columns)}). Fix: set fields.{key} in datasets.yaml (or {_FIELD_FLAGS[key]} for your own "
        f"file) to one of them."
    )
