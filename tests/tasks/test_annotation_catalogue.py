"""Annotation catalogue: reference/query pair entries (validation, loader, real data end to end) and the curated label -> CL maps."""

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
    recs = [json.loads(line) for p in tmp_path.glob("runs/*/records/*.jsonl") for line in p.read_text().splitlines()]
    val = {(r["model"], r["metric"]): r["value"] for r in recs}
    assert val["pca", "logreg_ref_query_macro_f1"] > val["random", "logreg_ref_query_macro_f1"] + 0.2
    assert val["pca", "knn_ref_query_onto_within1"] >= val["pca", "knn_ref_query_onto_exact"]
    rec = next(r for r in recs if r["model"] == "pca" and r["metric"] == "knn_ref_query_macro_f1")
    assert rec["params"]["n_reference_cells"] == 2000 and rec["params"]["query_cells_unmatched"] == {"CL:0008001": 3}


# The CL term name each curated label is meant to reach (read off the shipped CL, v2026-03-26).
EXPECTED_NAMES = {
    "scib_human_pancreas": {"alpha": "pancreatic A cell", "beta": "type B pancreatic cell", "gamma": "pancreatic PP cell",
                            "delta": "pancreatic D cell", "epsilon": "pancreatic epsilon cell", "acinar": "pancreatic acinar cell",
                            "ductal": "pancreatic ductal cell", "activated_stellate": "pancreatic stellate cell",
                            "quiescent_stellate": "pancreatic stellate cell", "endothelial": "endothelial cell",
                            "macrophage": "macrophage", "mast": "mast cell", "schwann": "Schwann cell", "t_cell": "T cell"},
    "scib_human_immune": {"CD4+ T cells": "CD4-positive, alpha-beta T cell", "CD8+ T cells": "CD8-positive, alpha-beta T cell",
                          "NKT cells": "mature NK T cell", "NK cells": "natural killer cell",
                          "CD14+ Monocytes": "CD14-positive monocyte", "CD16+ Monocytes": "CD14-low, CD16-positive monocyte",
                          "Monocyte progenitors": "monoblast", "Monocyte-derived dendritic cells": "monocyte-derived dendritic cell",
                          "Plasmacytoid dendritic cells": "plasmacytoid dendritic cell", "CD10+ B cells": "precursor B cell",
                          "CD20+ B cells": "B cell", "Plasma cells": "plasma cell", "Erythrocytes": "erythrocyte",
                          "Erythroid progenitors": "erythroid progenitor cell",
                          "Megakaryocyte progenitors": "megakaryocyte progenitor cell", "HSPCs": "hematopoietic precursor cell"},
}


def test_curated_cl_maps_are_current_terms_of_the_shipped_cl():
    from scfm_bench.ontology import load_ontology

    onto = load_ontology()
    cat = Catalogue.model_validate(_packaged())
    for name, expected in EXPECTED_NAMES.items():
        cmap = cat.datasets[name].fields.ontology_map
        assert set(cmap) == set(expected), name  # 14 pancreas and 16 immune types (the scIB label sets)
        for label, cl in cmap.items():
            assert cl in onto and not onto.terms[cl].deprecated, (name, label, cl)
            assert onto.terms[cl].label == expected[label], (name, label, cl)


def test_ontology_map_fills_the_id_column(tmp_path):
    from scfm_bench.config import load_suite
    from scfm_bench.data import BUILDERS, load_dataset
    from scfm_bench.settings import Settings

    a = BUILDERS["synthetic"](n_cells=40, n_genes=20, n_batches=1, n_cell_types=3, seed=0)
    del a.obs["cell_type_ontology_term_id"]
    a.write_h5ad(tmp_path / "a.h5ad")
    fields = {"label": "cell_type", "ontology_id": "cl", "ontology_map": {"type_0": "CL:0000236", "type_1": "CL:0000084"}}
    (tmp_path / "datasets.yaml").write_text(yaml.safe_dump({"datasets": {"a": {"source": "file", "path": "a.h5ad", "fields": fields}}}))
    ds = load_dataset("a", load_suite(tmp_path).catalogue.datasets["a"], Settings(), suite_root=tmp_path)
    expected = a.obs["cell_type"].astype(str).map({"type_0": "CL:0000236", "type_1": "CL:0000084", "type_2": "type_2"})
    assert list(ds.adata.obs["cl"].astype(str)) == list(expected)  # unlisted labels stay, reported unmapped later
    with pytest.raises(ValidationError, match="ontology_map needs"):
        Catalogue.model_validate({"datasets": {"a": {"source": "file", "path": "a.h5ad",
                                                     "fields": {"label": "cell_type", "ontology_map": {"x": "CL:0000236"}}}}})
