"""Reference/query pair entries: catalogue validation, the pair loader, and the real-data pair end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from scfm_bench.config.schemas import Catalogue
from scfm_bench.config.suite import packaged_suite_dir


def _packaged() -> dict:
    return yaml.safe_load((packaged_suite_dir() / "datasets.yaml").read_text())


def test_catalogue_refuses_pairs_sharing_cells():
    raw = _packaged()
    raw["datasets"]["bad_pair"] = {"source": "pair", "reference": "kang_ctrl_8donors_12k", "query": "ifnb_pbmc_2k",
                                   "fields": {"label": "cell_type"}}
    with pytest.raises(ValidationError, match="share cells"):
        Catalogue.model_validate(raw)
    raw["datasets"]["bad_pair"].update(reference="ifnb_pbmc_2k", query="kang_ctrl_8donors_12k")
    with pytest.raises(ValidationError, match="share cells"):
        Catalogue.model_validate(raw)
    raw["datasets"]["bad_pair"].update(query="no_such_dataset")
    with pytest.raises(ValidationError, match="no_such_dataset"):
        Catalogue.model_validate(raw)
    del raw["datasets"]["bad_pair"]
    cat = Catalogue.model_validate(raw)  # the shipped pairs are valid
    assert {n for n, e in cat.datasets.items() if e.source == "pair"} >= {"ifnb_to_pbmc_3chem", "kang_to_pbmc_3chem"}


def test_pair_loader_concatenates_on_shared_genes(tmp_path):
    from scfm_bench.config import load_suite
    from scfm_bench.data import BUILDERS, load_dataset
    from scfm_bench.settings import Settings

    a = BUILDERS["synthetic"](n_cells=50, n_genes=40, n_batches=2, seed=0)
    b = BUILDERS["synthetic"](n_cells=30, n_genes=40, n_batches=1, seed=1)[:, 10:].copy()  # 30 shared genes
    a.write_h5ad(tmp_path / "a.h5ad")
    b.write_h5ad(tmp_path / "b.h5ad")
    fields = {"label": "cell_type", "batch": "batch", "ontology_id": "cell_type_ontology_term_id"}
    (tmp_path / "datasets.yaml").write_text(yaml.safe_dump({"datasets": {
        "a": {"source": "file", "path": "a.h5ad", "fields": fields},
        "b": {"source": "file", "path": "b.h5ad", "fields": fields},
        "a_to_b": {"source": "pair", "reference": "a", "query": "b", "fields": fields}}}))
    suite = load_suite(tmp_path)
    ds = load_dataset("a_to_b", suite.catalogue.datasets["a_to_b"], Settings(), suite_root=tmp_path)
    ad = ds.adata
    assert ad.n_obs == 80 and list(ad.var_names) == list(b.var_names)
    assert (ad.obs["scfm_role"] == "reference").sum() == 50 and (ad.obs["scfm_role"] == "query").sum() == 30
    assert set(ad.obs["batch"]) == {"a:batch_0", "a:batch_1", "b:batch_0"}
    np.testing.assert_array_equal(ad.X[50:].toarray(), b.X.toarray())
    assert list(ad.obs["cell_type_ontology_term_id"][:50]) == list(a.obs["cell_type_ontology_term_id"].astype(str))
    again = load_dataset("a_to_b", suite.catalogue.datasets["a_to_b"], Settings(), suite_root=tmp_path)
    assert again.sha256 == ds.sha256


@pytest.mark.slow
def test_ref_query_pair_runs_from_the_cli_on_real_data(shared_data, tmp_path, monkeypatch):
    """ifnb_pbmc_2k (reference) -> pbmc_3chem_1k2 (query): PCA beats the random control, and matching
    within CL distance 1 (finer T-cell states in the reference) scores at least the exact match."""
    from typer.testing import CliRunner

    from scfm_bench.cli import app

    monkeypatch.setenv("SCFM_BENCH_DATA_DIR", str(shared_data))
    res = CliRunner().invoke(app, ["run", "-t", "annotation_refquery", "-d", "ifnb_to_pbmc_3chem", "-m", "pca", "-m", "random",
                                   "-o", str(tmp_path), "-q", "--suite-dir", str(packaged_suite_dir())])
    assert res.exit_code == 0, res.output
    recs = [json.loads(line) for p in tmp_path.glob("runs/*/records.jsonl") for line in p.read_text().splitlines()]
    val = {(r["model"], r["metric"]): r["value"] for r in recs}
    assert val["pca", "logreg_ref_query_macro_f1"] > val["random", "logreg_ref_query_macro_f1"] + 0.2
    assert val["pca", "knn_ref_query_onto_within1"] >= val["pca", "knn_ref_query_onto_exact"]
    rec = next(r for r in recs if r["model"] == "pca" and r["metric"] == "knn_ref_query_macro_f1")
    assert rec["params"]["n_reference_cells"] == 2000 and rec["params"]["query_cells_unmatched"] == {"CL:0008001": 3}
