"""load_dataset / validate_fields / entry_from_h5ad on good and bad user files."""

from __future__ import annotations

import hashlib

import h5py
import numpy as np
import pytest
import scipy.sparse as sp

from scfm_bench.config.schemas import DatasetEntry, FieldMap
from scfm_bench.data import entry_from_h5ad, load_dataset, validate_fields
from scfm_bench.exceptions import ChecksumError, DataError

FIELDS = FieldMap(label="cell_type", batch="batch", ontology_id="cell_type_ontology_term_id")


def file_entry(path, **fields) -> DatasetEntry:
    return DatasetEntry(source="file", path=str(path), fields=FIELDS.model_copy(update=fields))


def load(path, settings, **fields):
    return load_dataset("mine", file_entry(path, **fields), settings, suite_root=path.parent)


def test_good_file_loads_as_float32_csr_counts(tiny_adata, settings, tmp_path):
    path = tmp_path / "mine.h5ad"
    src = tiny_adata()
    src.write_h5ad(path)
    ds = load(path, settings)
    assert isinstance(ds.adata.X, sp.csr_matrix) and ds.adata.X.dtype == np.float32
    assert (ds.adata.X != src.X).nnz == 0
    assert ds.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    validate_fields(ds, need_label=True, need_batch=True, need_ontology=True)


def test_relative_path_resolves_against_suite_root(tiny_adata, settings, tmp_path):
    (tmp_path / "files").mkdir()
    tiny_adata().write_h5ad(tmp_path / "files" / "mine.h5ad")
    entry = DatasetEntry(source="file", path="files/mine.h5ad", fields=FIELDS)
    assert load_dataset("mine", entry, settings, suite_root=tmp_path).adata.n_obs == 60


def test_missing_file(settings, tmp_path):
    with pytest.raises(DataError, match=r"'mine': file .*nowhere\.h5ad does not exist\. Fix: check the path"):
        load(tmp_path / "nowhere.h5ad", settings)


def test_truncated_h5ad(tiny_adata, settings, tmp_path):
    path = tmp_path / "mine.h5ad"
    tiny_adata().write_h5ad(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match=r"mine\.h5ad is not a readable \.h5ad file .*truncated.*Fix:"):
        load(path, settings)


def test_not_hdf5_at_all(settings, tmp_path):
    path = tmp_path / "mine.h5ad"
    path.write_text("cell,gene\n1,2\n")
    with pytest.raises(DataError, match=r"not a readable \.h5ad file"):
        load(path, settings)


def test_hdf5_that_is_not_anndata(settings, tmp_path):
    path = tmp_path / "mine.h5ad"
    with h5py.File(path, "w") as f:
        f["matrix/data"] = np.arange(5)
    with pytest.raises(DataError, match=r"HDF5 file but not an AnnData .h5ad \(top-level keys: \['matrix'\].*read_10x_h5"):
        load(path, settings)


@pytest.mark.parametrize("key", ["label", "batch", "ontology_id"])
def test_missing_obs_column_lists_available_columns(key, tiny_adata, settings, tmp_path):
    path = tmp_path / "mine.h5ad"
    tiny_adata().write_h5ad(path)
    with pytest.raises(DataError) as err:
        load(path, settings, **{key: "nope"})
    msg = str(err.value)
    assert f"fields.{key} is 'nope'" in msg and "'cell_type'" in msg and "'batch'" in msg and "Fix:" in msg


def test_non_integer_counts(tiny_adata, settings, tmp_path):
    adata = tiny_adata()
    adata.X = adata.X * np.float32(0.5)
    path = tmp_path / "mine.h5ad"
    adata.write_h5ad(path)
    with pytest.raises(DataError) as err:
        load(path, settings)
    msg = str(err.value)
    assert "'mine'" in msg and "counts layer 'X'" in msg and "e.g. 0.5" in msg
    assert "pass the raw-count layer with --counts-layer or set fields.counts_layer" in msg


def test_negative_counts(tiny_adata, settings, tmp_path):
    adata = tiny_adata()
    adata.X.data[0] = -3
    path = tmp_path / "mine.h5ad"
    adata.write_h5ad(path)
    with pytest.raises(DataError, match=r"1 negative .*e\.g\. -3\.0"):
        load(path, settings)


def test_counts_from_a_layer_and_from_raw(tiny_adata, settings, tmp_path):
    adata = tiny_adata()
    counts = adata.X.copy()
    adata.layers["counts"] = counts
    adata.raw = adata.copy()
    adata.X = sp.csr_matrix(np.log1p(counts.toarray()))
    path = tmp_path / "mine.h5ad"
    adata.write_h5ad(path)
    with pytest.raises(DataError, match="counts layer 'X'"):
        load(path, settings)
    for layer in ("counts", "raw.X"):
        ds = load(path, settings, counts_layer=layer)
        assert (ds.adata.X != counts).nnz == 0
    with pytest.raises(DataError, match=r"counts layer 'umi' is not in .*available: \['X', 'raw.X', 'counts'\]"):
        load(path, settings, counts_layer="umi")


@pytest.mark.filterwarnings("ignore:Variable names are not unique")
def test_duplicated_gene_names(tiny_adata, settings, tmp_path):
    adata = tiny_adata()
    adata.var_names = ["MALAT1", "MALAT1"] + list(adata.var_names[2:])
    path = tmp_path / "mine.h5ad"
    adata.write_h5ad(path)
    with pytest.raises(DataError, match=r"1 gene ids occur more than once in var_names \(e\.g\. \['MALAT1'\]\)\. Fix:"):
        load(path, settings)


def test_gene_ids_from_a_var_column(tiny_adata, settings, tmp_path):
    adata = tiny_adata()
    adata.var["ensembl"] = [f"ENSG{j:011d}" for j in range(adata.n_vars)]
    path = tmp_path / "mine.h5ad"
    adata.write_h5ad(path)
    ds = load(path, settings, gene_ids="ensembl", gene_id_namespace="ensembl")
    assert ds.adata.var_names[0] == "ENSG00000000000"
    assert ds.adata.var["var_names_original"].iloc[0] == "G0"


def test_pinned_sha256_of_a_file_is_checked(tiny_adata, settings, tmp_path):
    path = tmp_path / "mine.h5ad"
    tiny_adata().write_h5ad(path)
    entry = DatasetEntry(source="file", path=str(path), sha256="f" * 64, fields=FIELDS)
    with pytest.raises(ChecksumError, match=r"'mine': .* has sha256 [0-9a-f]{64}, but datasets.yaml expects f{64}\. Fix:"):
        load_dataset("mine", entry, settings, suite_root=tmp_path)


def test_small_batches_are_listed(tiny_adata, settings, tmp_path):
    adata = tiny_adata(n_cells=40)
    adata.obs["batch"] = ["big"] * 35 + ["tiny"] * 3 + ["small"] * 2
    path = tmp_path / "mine.h5ad"
    adata.write_h5ad(path)
    ds = load(path, settings)
    validate_fields(ds, need_label=True, need_batch=False)
    with pytest.raises(DataError) as err:
        validate_fields(ds, need_label=True, need_batch=True)
    msg = str(err.value)
    assert "2 batches" in msg and "'tiny' (3 cells)" in msg and "'small' (2 cells)" in msg and "'big'" not in msg
    assert "min_cells_per_batch=10" in msg and "Fix:" in msg


def test_task_needs_a_field_the_dataset_lacks(tiny_adata, settings, tmp_path):
    path = tmp_path / "mine.h5ad"
    tiny_adata().write_h5ad(path)
    ds = load_dataset("mine", DatasetEntry(source="file", path=str(path)), settings, suite_root=tmp_path)
    validate_fields(ds, need_label=False, need_batch=False)
    with pytest.raises(DataError, match=r"'mine' has no fields\.label .*--label-key.*'cell_type'"):
        validate_fields(ds, need_label=True, need_batch=False)
    with pytest.raises(DataError, match=r"no fields\.batch .*--batch-key"):
        validate_fields(ds, need_label=False, need_batch=True)


def test_bad_ontology_ids(tiny_adata, settings, tmp_path):
    adata = tiny_adata()
    adata.obs["cell_type_ontology_term_id"] = adata.obs["cell_type_ontology_term_id"].replace("CL:0000084", "T cell")
    path = tmp_path / "mine.h5ad"
    adata.write_h5ad(path)
    ds = load(path, settings)
    with pytest.raises(DataError, match=r"not Cell Ontology ids \(CL:nnnnnnn\), e\.g\. \['T cell'\]\. Fix:"):
        validate_fields(ds, need_label=True, need_batch=True, need_ontology=True)


@pytest.mark.filterwarnings("ignore:Observation names are not unique")
def test_duplicated_cell_names_are_made_unique(tiny_adata, settings, tmp_path):
    adata = tiny_adata()
    adata.obs_names = ["same"] * adata.n_obs
    path = tmp_path / "mine.h5ad"
    adata.write_h5ad(path)
    assert load(path, settings).adata.obs_names.is_unique


def test_entry_from_h5ad(tiny_adata, tmp_path):
    adata = tiny_adata()
    path = tmp_path / "My PBMC-Data.v2.h5ad"
    adata.write_h5ad(path)
    name, entry = entry_from_h5ad(path, label_key="cell_type", batch_key="batch")
    assert name == "my_pbmc_data_v2"
    assert entry.source == "file" and entry.path == str(path.resolve())
    assert entry.fields.label == "cell_type" and entry.fields.gene_id_namespace == "symbol"
    assert entry.fields.ontology_id == "cell_type_ontology_term_id"  # the CELLxGENE column, found without asking
    assert entry_from_h5ad(path, ontology_key="cell_type")[1].fields.ontology_id == "cell_type"  # the flag wins
    adata.var_names = [f"ENSG{j:011d}" for j in range(adata.n_vars)]
    del adata.obs["cell_type_ontology_term_id"]
    adata.write_h5ad(tmp_path / "ensemblKeyed.h5ad")
    name, entry = entry_from_h5ad(tmp_path / "ensemblKeyed.h5ad")
    assert name == "ensembl_keyed" and entry.fields.gene_id_namespace == "ensembl"
    assert entry.fields.ontology_id is None
    with pytest.raises(DataError, match="does not exist"):
        entry_from_h5ad(tmp_path / "absent.h5ad")


@pytest.mark.parametrize("change, message", [
    (None, "fields.continuous is 'score', but the data has no such obs column"),
    ("text", "obs['score'], which is not numeric"),
    ("nan", "obs['score'] (fields.continuous) has 1 missing or infinite values"),
])
def test_continuous_columns_must_exist_be_numeric_and_finite(change, message, tiny_adata, settings, tmp_path):
    adata = tiny_adata()
    if change == "text":
        adata.obs["score"] = "high"
    elif change == "nan":
        adata.obs["score"] = np.r_[np.nan, np.arange(adata.n_obs - 1.0)]
    path = tmp_path / "mine.h5ad"
    adata.write_h5ad(path)
    with pytest.raises(DataError, match="dataset 'mine'") as err:
        load(path, settings, continuous=["score"])
    assert message in str(err.value) and "Fix:" in str(err.value)
    adata.obs["score"] = np.arange(adata.n_obs, dtype=float)
    adata.write_h5ad(path)
    assert load(path, settings, continuous=["score"]).adata.obs["score"].dtype == float
