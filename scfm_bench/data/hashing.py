"""The sha256 that identifies a dataset in every record: of the file, or of the content for built ones."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from anndata import AnnData


def file_sha256(path: Path) -> str:
    import pooch

    return pooch.file_hash(str(path), alg="sha256")


def content_sha256(adata: AnnData, columns: list[str]) -> str:
    """sha256 over the counts (CSR data/indices/indptr), cell and gene names and the given obs columns.

    Built datasets have no canonical file (h5ad bytes embed library versions), so their identity is
    the content the benchmark actually uses. Arrays are hashed in fixed dtypes so the hash does not
    depend on index width or the order of stored entries.
    """
    import scipy.sparse as sp

    X = sp.csr_matrix(adata.X, dtype="float32", copy=True)
    X.sum_duplicates()  # also sorts indices: one canonical layout
    h = hashlib.sha256()

    def add(tag: str, payload: bytes) -> None:
        # length-prefixed parts: no two different contents can concatenate to the same bytes
        h.update(f"{tag}:{len(payload)}:".encode())
        h.update(payload)

    add("shape", repr(X.shape).encode())
    add("data", X.data.astype("<f4").tobytes())
    add("indices", X.indices.astype("<i8").tobytes())
    add("indptr", X.indptr.astype("<i8").tobytes())
    add("obs_names", "\0".join(adata.obs_names).encode())
    add("var_names", "\0".join(adata.var_names).encode())
    for col in columns:
        add(f"obs:{col}", "\0".join(adata.obs[col].astype(str)).encode())
    return h.hexdigest()
