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


ANNOTATION = {"annotation", "annotation_fewshot", "annotation_novel", "annotation_refquery"}  # the suite's protocols


@pytest.mark.slow
def test_readme_byo_example_runs_the_tasks_the_file_supports(shared_data, tmp_path):
    """The README's bring-your-own example without --task: the embedding tasks run, the perturbation
    task (the file is no screen) is listed as not run with its reason, and the exit code is 0."""
    from scfm_bench.records import read_records

    out = tmp_path / "out"
    r = cli("run", "--dataset", str(shared_data / "pbmc_3chem_1k2.h5ad"), *BYO, "--model", "pca", "-o", str(out),
            env_extra={"COLUMNS": "1000"})
    assert r.returncode == 0, r.stderr
    recs = read_records(out)
    assert {r.task for r in recs} == {*ANNOTATION, "batch_integration", "zero_shot_clustering"}
    assert {(r.dataset, r.model) for r in recs} == {("pbmc_3chem_1k2", "pca")}
    # the CELLxGENE ontology column is found without --ontology-key, so the ontology metrics are scored
    assert "Cell Ontology ids from obs['cell_type_ontology_term_id']" in r.stderr
    ontology = [r for r in recs if r.family == "ontology"]
    # (annotation_refquery is skipped with its reason: the suite's reference_batches name the default dataset's batches)
    assert {r.task for r in ontology} == {*ANNOTATION - {"annotation_refquery"}, "batch_integration", "zero_shot_clustering"}
    assert all(r.status == "ok" for r in ontology), [r.reason for r in ontology if r.status != "ok"]
    assert "not run: task 'perturbation': none of the models ('pca') is a perturbation predictor" in r.stderr


def test_models_only_some_tasks_know_run_where_they_fit(tmp_path):
    r = cli("run", "--model", "pca", "--model", "mean", "--dry-run", cwd=tmp_path, env_extra={"COLUMNS": "1000"})
    assert r.returncode == 0, r.stderr
    rows = {tuple(c.strip() for c in line.split("│")[1:4]) for line in r.stdout.splitlines() if line.startswith("│")}
    assert rows == {*((t, "pbmc68k_semisynthetic", "pca") for t in [*ANNOTATION, "batch_integration", "zero_shot_clustering"]),
                    ("perturbation", "perturbation_synthetic", "mean")}
    assert ("not run: 'mean' in task(s) annotation, annotation_fewshot, annotation_novel, annotation_refquery, "
            "batch_integration, zero_shot_clustering: not an embedding model") in r.stderr
    # a task asked for by name still refuses a model it does not know
    r = cli("run", "--task", "perturbation", "--model", "pca", "--dry-run", cwd=tmp_path)
    assert r.returncode == 2 and "perturbation model 'pca' is not a predictor" in r.stderr


def test_nothing_to_run_exit_2_with_every_reason(shared_data, tmp_path):
    r = cli("run", "--dataset", str(shared_data / "pbmc_3chem_1k2.h5ad"), "--model", "pca", "--dry-run",
            env_extra={"COLUMNS": "1000"})
    assert r.returncode == 2 and "Nothing to run" in r.stderr
    assert "task 'zero_shot_clustering' on 'pbmc_3chem_1k2': it needs cell-type labels (--label-key" in r.stderr
    assert "task 'perturbation': none of the models ('pca') is a perturbation predictor" in r.stderr


def test_perturbation_task_not_run_on_a_file_that_is_no_screen(shared_data, tmp_path):
    r = cli("run", "--dataset", str(shared_data / "pbmc_3chem_1k2.h5ad"), "--label-key", "cell_type", "--model", "pca",
            "--model", "mean", "--dry-run", env_extra={"COLUMNS": "1000"})
    assert r.returncode == 0, r.stderr
    assert "5 cells" in r.stdout  # the four annotation protocols and zero-shot clustering with pca
    assert "not run: task 'perturbation' on 'pbmc_3chem_1k2': not a perturbation screen" in r.stderr
    assert "not run: task 'batch_integration' on 'pbmc_3chem_1k2': it needs batches (--batch-key" in r.stderr
    assert "Cell Ontology ids from obs['cell_type_ontology_term_id'], the CELLxGENE standard column" in r.stderr


@pytest.mark.slow
def test_missing_ontology_column_skip_reason_names_the_flag(tmp_path):
    """Without ontology ids the ontology metrics are skipped, and the reason says which flag declares them."""
    import anndata as ad
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    n = 120
    adata = ad.AnnData(sp.csr_matrix(rng.poisson(3.0, (n, 60)).astype(np.float32)),
                       obs=pd.DataFrame({"cell_type": np.repeat(["a", "b", "c"], n // 3)}, index=[f"c{i}" for i in range(n)]),
                       var=pd.DataFrame(index=[f"G{j}" for j in range(60)]))
    adata.write_h5ad(tmp_path / "no_ids.h5ad")
    from scfm_bench.records import read_records

    r = cli("run", "--dataset", str(tmp_path / "no_ids.h5ad"), "--label-key", "cell_type", "--task", "zero_shot_clustering",
            "--model", "pca", "-o", str(tmp_path / "out"), env_extra={"COLUMNS": "1000"})
    assert r.returncode == 0, r.stderr
    skipped = [r for r in read_records(tmp_path / "out") if r.metric.startswith("scgraph_ontorwr")]  # needs CL ids
    assert len(skipped) == 2 and all(r.status == "skipped" for r in skipped)
    assert all("needs ontology_ids, which this dataset does not declare; give --ontology-key" in r.reason for r in skipped)


def test_embed_takes_the_column_flags_of_run(shared_data, tmp_path):
    """harmony embeds a user's file whose batch column is not called `batch`, when --batch-key names it."""
    import anndata as ad
    import numpy as np

    adata = ad.read_h5ad(shared_data / "pbmc_3chem_1k2.h5ad")
    adata.obs = adata.obs.rename(columns={"batch": "chemistry"})
    path = tmp_path / "chem.h5ad"
    adata.write_h5ad(path)
    out = tmp_path / "harmony.npy"
    r = cli("embed", "--model", "harmony", "--dataset", str(path), "--out", str(out), env_extra={"COLUMNS": "1000"})
    assert r.returncode == 1 and "needs a batch column" in r.stderr and not out.exists()
    r = cli("embed", "--model", "harmony", "--dataset", str(path), "--batch-key", "chemistry", "--label-key", "cell_type",
            "--ontology-key", "cell_type_ontology_term_id", "--counts-layer", "X", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert np.load(out).shape[0] == adata.n_obs
    r = cli("embed", "--model", "harmony", "--dataset", str(path), "--batch-key", "lane", "--out", str(tmp_path / "x.npy"),
            env_extra={"COLUMNS": "1000"})
    assert r.returncode == 2 and "fields.batch is 'lane', but the data has no such obs column" in r.stderr


def _dry_models(r) -> list[str]:
    return [line.split("│")[3].strip() for line in r.stdout.splitlines() if line.startswith("│")]


def test_two_precomputed_embeddings_compare_in_one_report(tmp_path):
    """`--model precomputed:NAME` twice (and `precomputed.name`): records and the leaderboard carry each
    name. A small synthetic suite with one cheap metric keeps this fast."""
    import numpy as np
    import yaml

    from scfm_bench.records import read_records

    (tmp_path / "tasks").mkdir()
    (tmp_path / "metrics").mkdir()
    (tmp_path / "datasets.yaml").write_text(yaml.safe_dump({"version": 1, "datasets": {"tiny": {
        "source": "builtin", "builder": "synthetic", "params": {"n_cells": 120, "n_genes": 60, "n_cell_types": 3},
        "fields": {"label": "cell_type", "batch": "batch"}}}}))
    (tmp_path / "metrics" / "ari.yaml").write_text(yaml.safe_dump({"metrics": [
        {"id": "ari_kmeans", "metric": "nmi_ari_kmeans", "output": "ari", "family": "bio"}], "primary": "ari_kmeans"}))
    (tmp_path / "tasks" / "zs.yaml").write_text(yaml.safe_dump(
        {"task": "zero_shot_clustering", "datasets": ["tiny"], "models": ["pca"], "metric_suite": "ari"}))
    for name, seed in (("a", 0), ("b", 1), ("c", 2)):
        np.save(tmp_path / f"{name}.npy", np.random.default_rng(seed).normal(size=(120, 8)).astype(np.float32))
    r = cli("run", "--model", "precomputed:mine_a", "--model", "precomputed:mine_b", "--model", "precomputed",
            "--model-param", "mine_a.path=a.npy", "--model-param", "mine_b.path=b.npy",
            "--model-param", "precomputed.path=c.npy", "--model-param", "precomputed.name=mine_c",
            "-o", "out", cwd=tmp_path, env_extra={"COLUMNS": "1000"})
    assert r.returncode == 0, r.stderr
    recs = read_records(tmp_path / "out")
    assert {r.model for r in recs} == {"mine_a", "mine_b", "mine_c"}
    assert {r.params["model_params"]["path"] for r in recs if r.model == "mine_b"} == {"b.npy"}
    assert all(m in r.stdout for m in ("mine_a", "mine_b", "mine_c"))


def test_precomputed_name_param_names_the_model(tmp_path):
    emb = tmp_path / "e.npy"
    r = cli("run", "--task", "zero_shot_clustering", "--model", "precomputed", "--model-param", f"precomputed.path={emb}",
            "--model-param", "precomputed.name=my_scvi", "--dry-run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert _dry_models(r) == ["my_scvi"]


@pytest.mark.parametrize("args, message", [
    (["--model", "scvi", "--model-param", "scvi.max_epoch_cap=3"],
     "model 'scvi' has no parameter 'max_epoch_cap'. Did you mean 'max_epochs_cap'? Allowed: batch_size, max_epochs_cap,"),
    (["--model", "pca", "--model-param", "scvi.max_epochs_cap=3"],
     "--model-param scvi.max_epochs_cap=…: model 'scvi' is not in this run. Models in the run: pca."),
    (["--model", "precomputed:mine", "--model-param", "precomputed.path=x.npy"],
     "this model's parameters are set with --model-param mine.KEY=VALUE"),
    (["--model", "precomputed", "--model", "precomputed", "--model-param", "precomputed.path=x.npy"],
     "two models of the run are named 'precomputed'; give each its own name (--model precomputed:NAME)"),
    (["--model", "precomputed:pca", "--model-param", "pca.path=x.npy"], "'pca' is a built-in model key"),
])
def test_model_param_mistakes_exit_2(args, message, tmp_path):
    r = cli("run", "--task", "zero_shot_clustering", *args, "--dry-run", cwd=tmp_path, env_extra={"COLUMNS": "1000"})
    assert r.returncode == 2 and message in r.stderr, r.stderr
