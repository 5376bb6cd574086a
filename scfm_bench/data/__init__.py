"""Data layer: catalogue entry -> fetched, verified, validated AnnData with raw counts in X.

Modules: ``fetch`` (pooch download, sha256 records), ``read`` (h5ad -> counts AnnData), ``checks``
(generic and per-task validation), ``load`` (the composition), ``builtin`` (builders and their
cache), ``pbmc68k`` / ``batch_sim`` / ``synthetic`` (the embedded datasets), ``byo`` (user files),
``preprocess`` (normalise, HVG, PCA), ``hashing``. Heavy libraries are imported inside functions.
"""

from scfm_bench.data.builtin import BUILDERS
from scfm_bench.data.byo import entry_from_h5ad
from scfm_bench.data.checks import validate_fields
from scfm_bench.data.fetch import fetch_dataset
from scfm_bench.data.load import LoadedDataset, load_dataset
from scfm_bench.data.preprocess import preprocess

__all__ = [
    "BUILDERS",
    "LoadedDataset",
    "entry_from_h5ad",
    "fetch_dataset",
    "load_dataset",
    "preprocess",
    "validate_fields",
]
