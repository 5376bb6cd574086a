"""preprocess: counts kept, log-normalised X, HVG on counts, PCA, parameters recorded, deterministic."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from scfm_bench.data import preprocess
from scfm_bench.data.synthetic import synthetic


def test_preprocess_records_its_parameters_and_keeps_counts():
    adata = synthetic(n_cells=400, n_genes=300, seed=0)
    out = preprocess(adata, n_top_genes=100, n_pcs=20, seed=3)
    assert (out.layers["counts"] != adata.X).nnz == 0
    assert (adata.X != synthetic(n_cells=400, n_genes=300, seed=0).X).nnz == 0  # input untouched
    np.testing.assert_allclose(np.expm1(out.X[:5].toarray()).sum(axis=1), 1e4, rtol=1e-4)
    assert out.var["highly_variable"].sum() == 100
    assert out.obsm["X_pca"].shape == (400, 20)
    assert out.uns["scfm_bench_preprocess"] | {"scanpy_version": None} == {
        "counts_layer": "counts",
        "normalize_total_target_sum": 1e4,
        "log1p": True,
        "hvg_flavor": "seurat_v3",
        "hvg_layer": "counts",
        "n_top_genes_requested": 100,
        "n_hvg": 100,
        "pca_n_comps_requested": 20,
        "pca_n_comps": 20,
        "pca_svd_solver": "arpack",
        "seed": 3,
        "scanpy_version": None,
    }


def test_preprocess_is_deterministic():
    adata = synthetic(n_cells=300, n_genes=200, seed=1)
    np.testing.assert_array_equal(preprocess(adata).obsm["X_pca"], preprocess(adata).obsm["X_pca"])


@pytest.mark.filterwarnings("ignore:Some cells have zero counts")
def test_preprocess_caps_sizes_on_tiny_data():
    params = preprocess(synthetic(n_cells=50, n_genes=5, seed=0)).uns["scfm_bench_preprocess"]
    assert params["n_hvg"] == 5 and params["pca_n_comps"] == 4


def test_preprocess_falls_back_when_seurat_v3_fails(monkeypatch, caplog):
    import scanpy as sc

    original = sc.pp.highly_variable_genes

    def failing_v3(adata, **kwargs):
        if kwargs.get("flavor") == "seurat_v3":
            raise ValueError("svddc failed in l2fit.")  # what scikit-misc's loess raises on very few genes
        return original(adata, **kwargs)

    monkeypatch.setattr(sc.pp, "highly_variable_genes", failing_v3)
    with caplog.at_level(logging.WARNING, logger="scfm_bench.data.preprocess"):
        out = preprocess(synthetic(n_cells=200, n_genes=60, seed=0), n_top_genes=30)
    params = out.uns["scfm_bench_preprocess"]
    assert params["hvg_flavor"] == "seurat" and params["hvg_layer"] == "X" and params["n_hvg"] == 30
    assert "falling back to flavor='seurat'" in caplog.text
