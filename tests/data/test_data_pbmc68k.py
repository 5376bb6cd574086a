"""The embedded default dataset: exact counts recovery, Cell Ontology table, and a real batch effect."""

from __future__ import annotations

import json
from collections import Counter
from importlib.resources import files

import numpy as np
import pytest
import scipy.sparse as sp

from scfm_bench.data import preprocess
from scfm_bench.data.pbmc68k import CELL_TYPES, LOG_ATOL, counts_from_lognorm, pbmc68k_semisynthetic
from scfm_bench.exceptions import DataError


@pytest.fixture(scope="module")
def source():
    import scanpy as sc

    return sc.datasets.pbmc68k_reduced()


@pytest.fixture(scope="module")
def semisynthetic():
    return pbmc68k_semisynthetic()


def test_counts_recovery_is_integral_and_totals_are_plausible(source):
    counts, scale = counts_from_lognorm(source.raw.X)
    assert counts.shape == source.raw.shape and counts.dtype == np.float32
    assert np.array_equal(counts.data, np.rint(counts.data)) and counts.data.min() >= 1
    # round trip: the counts reproduce every stored value within its 3-decimal storage precision
    x = sp.csr_matrix(source.raw.X).data.astype(np.float64)
    row_scale = np.repeat(scale, np.diff(counts.indptr))
    assert np.abs(np.log1p(counts.data * row_scale) - x).max() <= LOG_ATOL
    # the scale is 10,000 / total counts of the original cell, which obs["n_counts"] records
    n_counts = source.obs["n_counts"].to_numpy()
    np.testing.assert_allclose(1e4 / scale, n_counts, rtol=1e-3)
    totals = np.asarray(counts.sum(axis=1)).ravel()
    assert np.all(totals <= n_counts) and np.all(totals >= 0.1 * n_counts)  # 765 of ~30k genes kept


def test_counts_recovery_when_the_smallest_count_is_two():
    rng = np.random.default_rng(3)
    counts = rng.integers(2, 60, size=(6, 40)).astype(np.float64)
    counts[:, 0] = 2  # no count of 1 in any cell
    scale = rng.uniform(0.5, 5.0, size=(6, 1))
    stored = np.round(np.log1p(counts * scale), 3).astype(np.float32)
    recovered, fitted = counts_from_lognorm(sp.csr_matrix(stored))
    assert np.array_equal(recovered.toarray(), counts)
    np.testing.assert_allclose(fitted, scale.ravel(), rtol=1e-3)


def test_counts_recovery_refuses_values_that_are_not_log_counts():
    garbage = sp.csr_matrix(np.random.default_rng(0).uniform(0.1, 3.0, size=(3, 50)))
    with pytest.raises(DataError, match="refusing to round"):
        counts_from_lognorm(garbage)


def test_cell_ontology_table_matches_the_shipped_ontology(source):
    import zstandard

    data = files("cellxgene_ontology_guide") / "data"
    cl_version = json.loads((data / "latest_ontology_info.json").read_text())["ontologies"]["CL"]["version"]
    with (data / f"CL-ontology-{cl_version}.json.zst").open("rb") as f:
        ontology = json.loads(zstandard.ZstdDecompressor().stream_reader(f).read())
    for label, cl_id, cl_name in CELL_TYPES:
        assert cl_id in ontology, f"{label}: {cl_id} is not in CL {cl_version}"
        term = ontology[cl_id]
        assert not term["deprecated"], f"{label}: {cl_id} is deprecated in CL {cl_version}"
        assert term["label"] == cl_name, f"{label}: {cl_id} is {term['label']!r} in CL {cl_version}, not {cl_name!r}"
    assert {row[0] for row in CELL_TYPES} == set(source.obs["bulk_labels"].astype(str))


def test_obs_and_provenance(semisynthetic):
    obs = semisynthetic.obs
    assert list(obs.columns) == ["cell_type", "cell_type_ontology_term_id", "cell_type_ontology_label", "batch"]
    assert obs["cell_type"].nunique() == 10 and sorted(obs["batch"].unique()) == ["batch_0", "batch_1", "batch_2"]
    assert obs["cell_type_ontology_term_id"].str.fullmatch(r"CL:\d{7}").all()
    # stratified: every batch holds every cell type, in near-equal proportion
    table = obs.groupby(["cell_type", "batch"], observed=True).size().unstack()
    assert (table.max(axis=1) - table.min(axis=1)).max() <= 1
    provenance = semisynthetic.uns["provenance"]
    assert provenance["cells"] == "real" and "SIMULATED" in provenance["summary"]
    assert provenance["simulator_params"] == {"n_batches": 3, "library_sigma": 0.3, "gene_sigma": 0.5, "seed": 0}
    X = semisynthetic.X
    assert isinstance(X, sp.csr_matrix) and np.array_equal(X.data, np.rint(X.data))


def _knn_stats(embedding: np.ndarray, labels: np.ndarray, batches: np.ndarray, k: int = 15) -> tuple[float, float]:
    """(fraction of neighbours in the same batch, kNN majority-vote label accuracy)."""
    from sklearn.neighbors import NearestNeighbors

    neighbours = NearestNeighbors(n_neighbors=k + 1).fit(embedding).kneighbors(embedding, return_distance=False)[:, 1:]
    same_batch = float((batches[neighbours] == batches[:, None]).mean())
    predicted = np.array([Counter(labels[row]).most_common(1)[0][0] for row in neighbours])
    return same_batch, float((predicted == labels).mean())


def test_batch_effect_is_visible_and_cell_types_stay_recoverable(source, semisynthetic):
    import anndata as ad

    labels = semisynthetic.obs["cell_type"].to_numpy().astype(str)
    batches = semisynthetic.obs["batch"].to_numpy().astype(str)
    pca = preprocess(semisynthetic).obsm["X_pca"]
    same_batch, accuracy = _knn_stats(pca, labels, batches)
    shuffled, _ = _knn_stats(pca, labels, np.random.default_rng(0).permutation(batches))
    assert shuffled < 0.4  # chance is 1/3
    assert same_batch > 0.6

    original = ad.AnnData(counts_from_lognorm(source.raw.X)[0])
    _, original_accuracy = _knn_stats(preprocess(original).obsm["X_pca"], labels, batches)
    assert accuracy > 0.9 * original_accuracy
