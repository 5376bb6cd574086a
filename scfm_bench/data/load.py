"""Catalogue entry -> verified, validated AnnData whose X holds raw counts (float32 CSR)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from scfm_bench.config.schemas import DatasetEntry
from scfm_bench.data.builtin import build_builtin
from scfm_bench.data.checks import check_counts, check_obs_columns, set_gene_ids
from scfm_bench.data.fetch import fetch_verified, sidecar_path
from scfm_bench.data.hashing import content_sha256, file_sha256
from scfm_bench.data.read import read_counts_h5ad
from scfm_bench.exceptions import ChecksumError, ConfigError, DataError
from scfm_bench.settings import Settings

if TYPE_CHECKING:
    from anndata import AnnData

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedDataset:
    """A dataset ready for any model: ``adata.X`` = raw counts (float32 CSR), var_names = unique gene ids.

    ``sha256`` identifies the data in records: the file's sha256 for url and file sources, a content
    hash (counts, cell and gene names, label/batch/ontology columns) for builtin ones.
    """

    name: str
    adata: AnnData
    sha256: str
    entry: DatasetEntry


def load_dataset(name: str, entry: DatasetEntry, settings: Settings, *, suite_root: Path) -> LoadedDataset:
    """Fetch or build, read and validate a dataset; relative ``file`` paths resolve against ``suite_root``."""
    import numpy as np

    fields = entry.fields
    sha256: str | None = None
    if entry.source == "builtin":
        adata = _read_builtin(name, entry, settings)
    elif entry.source == "pair":
        from scfm_bench.data.pair import load_pair

        adata, sha256 = load_pair(name, entry, settings, suite_root=suite_root)
    elif entry.source == "url":
        path, sha256 = fetch_verified(name, entry, settings)
        fix = f"delete {path} and {sidecar_path(path)}, then load the dataset again to download a fresh copy"
        adata = read_counts_h5ad(path, name=name, counts_layer=fields.counts_layer, fix=fix)
    else:
        assert entry.path is not None  # guaranteed by DatasetEntry
        path = Path(entry.path).expanduser()
        if not path.is_absolute():  # the suite folder first, else the data directory
            path = Path(suite_root) / path if (Path(suite_root) / path).exists() else settings.datasets_dir / path
        fix = (f"check the path (a relative path in datasets.yaml resolves against the suite folder {suite_root}, "
               f"else the data directory {settings.datasets_dir}, SCFM_BENCH_DATA_DIR)")
        adata = read_counts_h5ad(path, name=name, counts_layer=fields.counts_layer, fix=fix)
        sha256 = file_sha256(path)
        if entry.sha256 and sha256 != entry.sha256.lower():
            raise ChecksumError(
                f"dataset {name!r}: {path} has sha256 {sha256}, but datasets.yaml expects {entry.sha256}. "
                f"Fix: restore the original file, or update sha256 in datasets.yaml if it changed on purpose."
            )

    if entry.perturbation is None:  # perturbation screens may hold log1p values; their loader checks them
        check_counts(adata, name=name, counts_layer=fields.counts_layer, non_integer=fields.non_integer_counts)
    adata.X = adata.X.astype(np.float32, copy=False)
    set_gene_ids(adata, name=name, fields=fields)
    if fields.ontology_map and fields.label in adata.obs:  # curated label -> CL map of the catalogue entry
        labels = adata.obs[fields.label].astype(str)
        adata.obs[fields.ontology_id] = labels.map(lambda v: fields.ontology_map.get(v, v)).astype("category")
    check_obs_columns(adata, name=name, fields=fields)
    if sha256 is None:
        pkey = entry.perturbation.key if entry.perturbation else None
        sha256 = content_sha256(adata, [c for c in (fields.label, fields.batch, fields.ontology_id, pkey,
                                                    *fields.continuous) if c])
    logger.info("dataset %r: %d cells x %d genes, sha256 %s", name, adata.n_obs, adata.n_vars, sha256)
    return LoadedDataset(name=name, adata=adata, sha256=sha256, entry=entry)


def _read_builtin(name: str, entry: DatasetEntry, settings: Settings) -> AnnData:
    if entry.fields.counts_layer != "X":
        raise ConfigError(f"dataset {name!r}: builtin datasets keep counts in X; remove fields.counts_layer.")
    path = build_builtin(name, entry, settings)
    fix = f"delete {path}; it is rebuilt on the next load"
    try:
        return read_counts_h5ad(path, name=name, counts_layer="X", fix=fix)
    except DataError as e:
        logger.warning("dataset %r: cached build is unreadable (%s); rebuilding it", name, e)
        path = build_builtin(name, entry, settings, rebuild=True)
        return read_counts_h5ad(path, name=name, counts_layer="X", fix=fix)
