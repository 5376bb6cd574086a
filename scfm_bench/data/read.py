"""Read an .h5ad file into the form every task sees: X = the configured raw-count matrix as CSR.

The file is opened in backed mode so only the count matrix is loaded: a CELLxGENE file keeps
normalised values in X and counts in raw.X, and loading both would double the memory needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from scfm_bench.exceptions import DataError

if TYPE_CHECKING:
    from anndata import AnnData

COUNTS_FIX = "pass the raw-count layer with --counts-layer or set fields.counts_layer in datasets.yaml"


def read_counts_h5ad(path: Path, *, name: str, counts_layer: str, fix: str) -> AnnData:
    """AnnData with X = ``counts_layer`` of ``path`` (as stored: CSR, dtype unchanged), obs, var, uns, obsm.

    ``counts_layer`` is ``"X"``, ``"raw.X"`` or a key of ``layers``; var comes from ``raw.var`` for
    ``raw.X``. ``fix`` tells the user how to repair a missing or unreadable file for this source.
    """
    import anndata as ad

    backed = _open_backed(path, name=name, fix=fix)
    try:
        X, var = _counts_matrix(backed, path=path, name=name, counts_layer=counts_layer)
        return ad.AnnData(
            X=_to_csr(X, name=name, counts_layer=counts_layer),
            obs=backed.obs.copy(),
            var=var.copy(),
            uns=dict(backed.uns),
            obsm=dict(backed.obsm),
        )
    finally:
        backed.file.close()


def read_names(path: Path, *, name: str, counts_layer: str, fix: str) -> tuple[list[str], list[str]]:
    """The gene names that go with ``counts_layer`` (raw.var for raw.X) and the obs column names,
    without loading any matrix."""
    backed = _open_backed(path, name=name, fix=fix)
    try:
        _, var = _counts_matrix(backed, path=path, name=name, counts_layer=counts_layer)
        return var.index.astype(str).tolist(), [str(c) for c in backed.obs.columns]
    finally:
        backed.file.close()


def _open_backed(path: Path, *, name: str, fix: str) -> AnnData:
    import anndata as ad

    _check_is_h5ad(path, name=name, fix=fix)
    try:
        return ad.read_h5ad(path, backed="r")
    except (OSError, KeyError, ValueError, TypeError) as e:  # how h5py/anndata report damaged or foreign content
        raise DataError(f"dataset {name!r}: {path} could not be read as AnnData ({type(e).__name__}: {e}). Fix: {fix}") from None


def _check_is_h5ad(path: Path, *, name: str, fix: str) -> None:
    import h5py

    if not path.is_file():
        raise DataError(f"dataset {name!r}: file {path} does not exist. Fix: {fix}")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DataError(
            f"dataset {name!r}: {path} is not a readable .h5ad file ({e}): it is truncated (an interrupted "
            f"download or copy) or not HDF5 at all. Fix: {fix}"
        ) from None
    with f:
        keys = sorted(f.keys())
    if not {"obs", "var"} <= set(keys):
        tenx = (
            " It looks like a 10x Genomics .h5 matrix: convert it with "
            "scanpy.read_10x_h5(path).write_h5ad('out.h5ad') and use that."
            if "matrix" in keys
            else ""
        )
        raise DataError(
            f"dataset {name!r}: {path} is an HDF5 file but not an AnnData .h5ad (top-level keys: {keys}; "
            f"an .h5ad has obs, var and X).{tenx} Fix: save the data with anndata's write_h5ad and point "
            f"the dataset at that file."
        )


def _counts_matrix(backed: AnnData, *, path: Path, name: str, counts_layer: str):
    available = (["X"] if backed.X is not None else []) + (["raw.X"] if backed.raw is not None else [])
    available += list(backed.layers.keys())
    if counts_layer not in available:
        raise DataError(
            f"dataset {name!r}: counts layer {counts_layer!r} is not in {path} (available: {available}). Fix: {COUNTS_FIX}."
        )
    if counts_layer == "X":
        return backed.X, backed.var
    if counts_layer == "raw.X":
        return backed.raw.X, backed.raw.var
    return backed.layers[counts_layer], backed.var


def _to_csr(X, *, name: str, counts_layer: str):
    import h5py
    import numpy as np
    import scipy.sparse as sp
    from anndata.abc import CSCDataset, CSRDataset

    if isinstance(X, (CSRDataset, CSCDataset)):
        X = X.to_memory()
    elif isinstance(X, h5py.Dataset):
        X = X[()]
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise DataError(
            f"dataset {name!r}: counts layer {counts_layer!r} holds {X.dtype} values, not numbers. Fix: {COUNTS_FIX}."
        )
    return sp.csr_matrix(X)
