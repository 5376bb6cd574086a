"""Bringing your own .h5ad, as the README shows it, on the real files of the shared data folder."""

from __future__ import annotations

import pytest
from test_cli import cli

BYO = ("--label-key", "cell_type", "--batch-key", "batch")


@pytest.fixture
def log_normalised(shared_data, tmp_path):
    """pbmc_3chem_1k2 as many published files hold it: normalize_total + log1p in X, no counts layer."""
    import anndata as ad
    import scanpy as sc

    adata = ad.read_h5ad(shared_data / "pbmc_3chem_1k2.h5ad")
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    path = tmp_path / "pbmc_lognorm.h5ad"
    adata.write_h5ad(path)
    return path


@pytest.mark.parametrize("round_counts", [True, False])
def test_log_normalised_data_refused_even_with_round_counts(log_normalised, round_counts, tmp_path):
    """Rounding log1p values would score garbage: exit 2 with the evidence, nothing written, and no
    suggestion to round."""
    out = tmp_path / "out"
    r = cli("run", "--dataset", str(log_normalised), *BYO, "--model", "pca", "--task", "zero_shot_clustering",
            *(["--round-counts"] if round_counts else []), "-o", str(out), env_extra={"COLUMNS": "1000"})
    assert r.returncode == 2, r.stderr
    assert "'pbmc_lognorm'" in r.stderr and "looks log-transformed or normalised" in r.stderr
    assert "100%) are fractional" in r.stderr and "largest value being 6.58" in r.stderr
    assert "expm1 of every cell's values sums to" in r.stderr and "--counts-layer" in r.stderr
    assert ("cannot recover counts" in r.stderr) is round_counts  # says why the flag given does not apply
    assert "set fields.non_integer_counts: round" not in r.stderr  # never suggested for such data
    assert not out.exists()


def test_normalised_not_logged_refused(shared_data, tmp_path):
    import anndata as ad
    import scanpy as sc

    adata = ad.read_h5ad(shared_data / "pbmc_3chem_1k2.h5ad")
    sc.pp.normalize_total(adata, target_sum=1e4)
    path = tmp_path / "cp10k.h5ad"
    adata.write_h5ad(path)
    r = cli("run", "--dataset", str(path), *BYO, "--model", "pca", "--task", "zero_shot_clustering", "--round-counts",
            "-o", str(tmp_path / "out"), env_extra={"COLUMNS": "1000"})
    assert r.returncode == 2 and "every cell's values sum to 10,000 (normalised to a constant total" in r.stderr
    assert not (tmp_path / "out").exists()


def test_counts_deposited_non_integer_suggest_rounding(shared_data, tmp_path):
    """pancreas_5tech_500 keeps a count scale (CEL-seq values like 1.002, max 456,962): rounding is offered."""
    r = cli("run", "--dataset", str(shared_data / "pancreas_5tech_500.h5ad"), *BYO, "--model", "pca",
            "--task", "zero_shot_clustering", "-o", str(tmp_path / "out"), env_extra={"COLUMNS": "1000"})
    assert r.returncode == 2
    assert "does not hold raw integer counts: 54,309 fractional of 100,355" in r.stderr
    assert "set fields.non_integer_counts: round (--round-counts)" in r.stderr
    assert "looks log-transformed" not in r.stderr
