"""End-to-end runs of the runner on a tiny suite folder (synthetic data, fast models)."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from scfm_bench.exceptions import ConfigError, DataError
from scfm_bench.records import read_records
from scfm_bench.runner import RunOptions, build_plan, execute
from scfm_bench.settings import Settings


def write_suite(root: Path, *, models=("pca", "random"), tasks=("batch_integration",), n_batches=3) -> Path:
    from scfm_bench.config import packaged_suite_dir

    (root / "tasks").mkdir(parents=True)
    (root / "metrics").symlink_to(packaged_suite_dir() / "metrics")
    (root / "datasets.yaml").write_text(yaml.safe_dump({"version": 1, "datasets": {"tiny": {
        "source": "builtin", "builder": "synthetic",
        "params": {"n_cells": 300, "n_genes": 200, "n_batches": n_batches, "n_cell_types": 4, "seed": 0},
        "fields": {"label": "cell_type", "batch": "batch", "ontology_id": "cell_type_ontology_term_id"}}}}))
    for t in tasks:
        (root / "tasks" / f"{t}.yaml").write_text(yaml.safe_dump(
            {"task": t, "datasets": ["tiny"], "models": list(models), "seeds": [0], "params": {"knn_method": "exact"}}))
    return root


def run(root, out, **kw):
    plan = build_plan(RunOptions(suite_dir=root, **kw))
    return execute(plan, Settings(), output_dir=out)


def test_run_writes_records_and_manifest(tmp_path, monkeypatch):
    from scfm_bench.metrics import scgraph

    calls = []  # scGraph's expression reference
    compute = scgraph.reference_distances
    monkeypatch.setattr(scgraph, "reference_distances", lambda *a, **k: calls.append(1) or compute(*a, **k))
    root = write_suite(tmp_path / "suite", tasks=("batch_integration", "zero_shot_clustering"))
    s = run(root, tmp_path / "out")
    assert s.exit_code == 0
    recs = read_records(tmp_path / "out")
    assert {r.model for r in recs} == {"pca", "random"} and {r.task for r in recs} == {"batch_integration", "zero_shot_clustering"}
    assert all(r.status == "ok" and r.dataset_sha256 for r in recs)
    total = {r.model: r.value for r in recs if r.metric == "total"}
    assert total["pca"] > total["random"]
    assert (s.run_dir / "manifest.json").is_file()
    # the embedding is computed once and shared by both tasks
    assert {r.timings.embedding_cached for r in recs if r.model == "pca"} == {False}
    # scGraph scored 2 models x 2 tasks on one expression reference
    assert len([r for r in recs if r.metric == "scgraph"]) == 4 and len(calls) == 1
    # the report's provenance footer names the Cell Ontology version the ontology metrics recorded
    from scfm_bench.leaderboard.report import build_report

    cl = {r.params["ontology_version"] for r in recs if r.metric == "scgraph_ontorwr"}
    assert len(cl) == 1 and build_report(recs).provenance.cl_versions == tuple(cl)


def test_seeds_and_resume(tmp_path):
    root = write_suite(tmp_path / "suite")
    out = tmp_path / "out"
    first = run(root, out, seeds=[0, 1])
    assert {r.seed for r in first.records} == {0, 1}
    plan = build_plan(RunOptions(suite_dir=root, seeds=[0, 1, 2]))
    again = execute(plan, Settings(), output_dir=out, resume=True)
    assert len(again.resumed) == 4  # 2 models x seeds 0, 1
    assert {r.seed for r in again.records} == {2}


def test_nan_embedding_fails_the_cell_and_the_run_continues(tmp_path):
    root = write_suite(tmp_path / "suite", models=("pca", "precomputed"))
    emb = tmp_path / "bad.npy"
    np.save(emb, np.full((300, 5), np.nan, dtype=np.float32))
    s = run(root, tmp_path / "out", model_params=[f"precomputed.path={emb}"])
    assert s.exit_code == 1
    bad = [r for r in s.records if r.model == "precomputed"]
    assert len(bad) == 1 and bad[0].status == "failed" and "non-finite" in bad[0].reason
    assert any(r.model == "pca" and r.status == "ok" for r in s.records)


def test_wrong_row_count_fails_the_cell(tmp_path):
    root = write_suite(tmp_path / "suite", models=("precomputed",))
    emb = tmp_path / "short.npy"
    np.save(emb, np.random.default_rng(0).normal(size=(10, 5)).astype(np.float32))
    s = run(root, tmp_path / "out", model_params=[f"precomputed.path={emb}"])
    assert s.exit_code == 1 and "shape (10, 5)" in s.records[0].reason


def test_single_batch_is_skipped_not_crashed(tmp_path):
    root = write_suite(tmp_path / "suite", n_batches=1, models=("pca",))
    s = run(root, tmp_path / "out")
    assert s.exit_code == 0
    assert [r.status for r in s.records] == ["skipped"] and "at least 2 batches" in s.records[0].reason


def test_bad_input_writes_nothing(tmp_path):
    root = write_suite(tmp_path / "suite")
    out = tmp_path / "out"
    with pytest.raises((ConfigError, DataError), match="nope"):
        run(root, out, label_key="nope", datasets=["tiny"])
    with pytest.raises(ConfigError, match="obsm_key 'X_missing'"):
        run(root, out, models=["precomputed"], model_params=["precomputed.obsm_key=X_missing"])
    with pytest.raises(ConfigError, match="exactly one of"):
        run(root, out, models=["precomputed"])
    with pytest.raises(ConfigError, match="Did you mean 'batch_integration'"):
        run(root, out, tasks=["batch_integraton"])
    assert not out.exists()


def test_bring_your_own_h5ad_and_obsm(tmp_path):
    from scfm_bench.data import BUILDERS

    ad = BUILDERS["synthetic"](n_cells=200, n_genes=150, n_batches=2, n_cell_types=3, seed=3)
    ad.obsm["X_mine"] = np.random.default_rng(0).normal(size=(ad.n_obs, 8)).astype(np.float32)
    path = tmp_path / "my_data.h5ad"
    ad.write_h5ad(path)
    root = write_suite(tmp_path / "suite")
    s = run(root, tmp_path / "out", datasets=[str(path)], models=["precomputed"], label_key="cell_type",
            batch_key="batch", model_params=["precomputed.obsm_key=X_mine"])
    assert s.exit_code == 0 and {r.dataset for r in s.records} == {"my_data"}


def test_continuous_properties_get_one_rogi_each_and_a_bad_column_writes_nothing(tmp_path):
    from scfm_bench.data import BUILDERS

    ad = BUILDERS["synthetic"](n_cells=200, n_genes=150, n_batches=2, n_cell_types=3, seed=3)
    rng = np.random.default_rng(0)
    ad.obs["type_score"] = ad.obs["cell_type"].cat.codes.to_numpy() + rng.normal(scale=0.1, size=ad.n_obs)
    ad.obs["shuffled"] = rng.permutation(ad.obs["type_score"].to_numpy())  # same values, no structure
    ad.obs["name"] = "x"
    ad.write_h5ad(tmp_path / "props.h5ad")
    root = write_suite(tmp_path / "suite", models=("pca",), tasks=("zero_shot_clustering",))
    catalogue = yaml.safe_load((root / "datasets.yaml").read_text())
    catalogue["datasets"]["props"] = {"source": "file", "path": str(tmp_path / "props.h5ad"), "fields": {
        "label": "cell_type", "batch": "batch", "continuous": ["type_score", "shuffled"]}}
    (root / "datasets.yaml").write_text(yaml.safe_dump(catalogue))
    s = run(root, tmp_path / "out", datasets=["props"])
    rogi = {r.metric: r for r in s.records if r.metric.startswith("rogi_continuous")}
    assert set(rogi) == {"rogi_continuous:type_score", "rogi_continuous:shuffled"}
    assert all(r.status == "ok" for r in rogi.values())
    assert rogi["rogi_continuous:type_score"].value < rogi["rogi_continuous:shuffled"].value  # smooth vs rough
    assert rogi["rogi_continuous:shuffled"].params["n_cells_used"] == 200

    catalogue["datasets"]["props"]["fields"]["continuous"] = ["type_score", "name"]
    (root / "datasets.yaml").write_text(yaml.safe_dump(catalogue))
    with pytest.raises(DataError, match="dataset 'props'.*obs\\['name'\\], which is not numeric"):
        run(root, tmp_path / "out2", datasets=["props"])
    assert not (tmp_path / "out2").exists()

