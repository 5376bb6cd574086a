"""Builtin datasets: determinism, the h5ad cache, parameter errors, the synthetic generator."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import scipy.sparse as sp

from scfm_bench.config.schemas import DatasetEntry, FieldMap
from scfm_bench.data import BUILDERS, load_dataset, validate_fields
from scfm_bench.data import builtin as builtin_module
from scfm_bench.data.hashing import content_sha256
from scfm_bench.data.synthetic import _CHUNK_CELLS, synthetic
from scfm_bench.exceptions import ConfigError

FIELDS = FieldMap(label="cell_type", batch="batch", ontology_id="cell_type_ontology_term_id")
COLUMNS = ["cell_type", "batch", "cell_type_ontology_term_id"]
SMALL = {"n_cells": 300, "n_genes": 80}


def builtin_entry(builder: str, **params) -> DatasetEntry:
    return DatasetEntry(source="builtin", builder=builder, params=params, fields=FIELDS)


def test_builders_are_registered():
    assert set(BUILDERS) == {"pbmc68k_semisynthetic", "synthetic", "perturbation_synthetic"}


@pytest.mark.parametrize(
    ("builder", "params"),
    [("synthetic", SMALL), ("pbmc68k_semisynthetic", {})],
)
def test_builders_are_deterministic_per_seed(builder, params):
    build = BUILDERS[builder]
    first = content_sha256(build(**params, seed=0), COLUMNS)
    assert content_sha256(build(**params, seed=0), COLUMNS) == first
    assert content_sha256(build(**params, seed=1), COLUMNS) != first


def test_synthetic_layout():
    adata = synthetic(n_cells=300, n_genes=80, n_batches=2, n_cell_types=12, seed=0)
    assert isinstance(adata.X, sp.csr_matrix) and adata.X.dtype == np.float32
    assert np.array_equal(adata.X.data, np.rint(adata.X.data)) and adata.X.data.min() >= 1
    assert adata.var_names[0] == "GENE0001" and adata.var_names[-1] == "GENE0080"
    assert set(adata.obs["batch"]) == {"batch_0", "batch_1"}
    assert adata.obs["cell_type"].nunique() == 12
    # 12 types cycle through the 10 real CL ids of the pbmc table
    assert adata.obs["cell_type_ontology_term_id"].nunique() == 10
    assert adata.obs["cell_type_ontology_term_id"].str.fullmatch(r"CL:\d{7}").all()
    assert 0.02 < adata.X.nnz / (300 * 80) < 0.5  # sparse like real data


def test_synthetic_spans_several_chunks():
    adata = synthetic(n_cells=_CHUNK_CELLS + 10, n_genes=20, seed=0)
    assert adata.shape == (_CHUNK_CELLS + 10, 20) and isinstance(adata.X, sp.csr_matrix)
    assert adata.X[_CHUNK_CELLS:].nnz > 0


def test_builtin_is_cached_and_the_second_load_does_not_build(settings, tmp_path, monkeypatch):
    calls = []

    @functools.wraps(synthetic)  # same signature, hence the same cache key
    def counting(**params):
        calls.append(params)
        return synthetic(**params)

    monkeypatch.setitem(BUILDERS, "synthetic", counting)
    entry = builtin_entry("synthetic", **SMALL)
    first = load_dataset("synth", entry, settings, suite_root=tmp_path)
    second = load_dataset("synth", entry, settings, suite_root=tmp_path)
    assert len(calls) == 1
    assert len(list((settings.cache_dir / "builtin").glob("synthetic-*.h5ad"))) == 1
    assert second.sha256 == first.sha256
    validate_fields(second, need_label=True, need_batch=True, need_ontology=True)


def test_cache_key_depends_on_params(settings, tmp_path):
    a = load_dataset("a", builtin_entry("synthetic", **SMALL), settings, suite_root=tmp_path)
    b = load_dataset("b", builtin_entry("synthetic", **SMALL, seed=5), settings, suite_root=tmp_path)
    assert a.sha256 != b.sha256
    assert len(list((settings.cache_dir / "builtin").glob("synthetic-*.h5ad"))) == 2


def test_corrupt_cache_is_rebuilt(settings, tmp_path):
    entry = builtin_entry("synthetic", **SMALL)
    first = load_dataset("synth", entry, settings, suite_root=tmp_path)
    (cached,) = (settings.cache_dir / "builtin").glob("synthetic-*.h5ad")
    cached.write_bytes(cached.read_bytes()[:1000])
    assert load_dataset("synth", entry, settings, suite_root=tmp_path).sha256 == first.sha256


def test_unknown_builder_and_parameters(settings, tmp_path):
    with pytest.raises(ConfigError, match=r"unknown builder 'nope'. Known builders: pbmc68k_semisynthetic, perturbation_synthetic, synthetic"):
        load_dataset("x", builtin_entry("nope"), settings, suite_root=tmp_path)
    with pytest.raises(ConfigError, match=r"has no parameter\(s\) \['n_cels'\]. Its parameters: n_cells"):
        load_dataset("x", builtin_entry("synthetic", n_cels=5), settings, suite_root=tmp_path)
    with pytest.raises(ConfigError, match="n_cells must be >= 1"):
        builtin_module.build_builtin("x", builtin_entry("synthetic", n_cells=0), settings)
