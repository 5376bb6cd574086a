"""Perturbation task: calibration identities, known-effect synthetic checks, bad input, real-format smoke."""

from __future__ import annotations

import numpy as np
import pytest

from scfm_bench.config import load_suite, packaged_suite_dir
from scfm_bench.config.schemas import DatasetEntry, PerturbationFields
from scfm_bench.data.perturb_sim import perturbation_synthetic, synthetic_gene_embeddings
from scfm_bench.exceptions import DataError
from scfm_bench.tasks.perturbation import Perturbation, PerturbationParams

ENTRY = DatasetEntry(source="builtin", builder="perturbation_synthetic", perturbation=PerturbationFields(control_labels=["control"]))
FAST = dict(n_hvg=150, n_top_expressed=100, n_bootstrap=2000, grid_dims=[5, 10], grid_lambda=[0.1, 1], grid_k=[5])


@pytest.fixture(scope="module")
def suite():
    return load_suite(packaged_suite_dir()).metric_suites["perturbation"]


def screen(**kw):
    args = dict(n_genes=200, n_single=40, n_double=0, cells_per_condition=60, n_control=400, seed=0)
    return perturbation_synthetic(**{**args, **kw})


def run(adata, suite, models, **params):
    res = Perturbation().run_direct(adata, name="t", entry=ENTRY, models=models, params=PerturbationParams(**{**FAST, **params}),
                                    seed=0, suite=suite)
    return {m: {o.id: o for o in outs} for m, outs in res.outcomes.items()}, res.table


def test_mean_is_calibrated_and_agnostic_predictors_score_one_half(suite):
    out, table = run(screen(), suite, ["mean", "no_change", "lin_pca"])
    assert (table[table.model == "mean"]["pearson_delta_pert"] == 0).all()  # exactly 0 per perturbation
    for m in ("mean", "no_change"):
        assert out[m]["centroid_accuracy"].value == 0.5
    assert out["lin_pca"]["centroid_accuracy"].value > 0.5


def test_oracle_embedding_beats_mean_noise_embedding_does_not(suite, tmp_path):
    ad = screen(sys_shift=0.5)
    files = {}
    for name, sigma in (("oracle", 0.0), ("noise", None)):
        genes, emb = synthetic_gene_embeddings(ad, sigma=sigma, dim=8, seed=1)
        files[name] = str(tmp_path / f"{name}.npz")
        np.savez(files[name], genes=np.array(genes), embeddings=emb)
    out, _ = run(ad, suite, ["mean", "ridge_oracle", "ridge_noise"], embeddings=files)
    oracle = out["ridge_oracle"]["pearson_delta_pert"].params["vs_mean"]
    noise = out["ridge_noise"]["pearson_delta_pert"].params["vs_mean"]
    assert oracle["ci95"][0] > 0
    assert noise["ci95"][0] <= 0


def test_shared_shift_inflates_legacy_metric_only(suite):
    no_shift, _ = run(screen(sys_shift=0.0), suite, ["mean"])
    shift, _ = run(screen(sys_shift=0.5), suite, ["mean"])
    assert shift["mean"]["pearson_delta_ctrl"].value > no_shift["mean"]["pearson_delta_ctrl"].value + 0.2
    for res in (no_shift, shift):
        assert res["mean"]["pearson_delta_pert"].value == 0
        assert res["mean"]["centroid_accuracy"].value == 0.5


def test_doubles_additive_beats_mean(suite):
    # 200 cells per condition: with fewer the additive baseline drowns in pseudobulk noise (spec §5.1)
    out, _ = run(screen(n_single=30, n_double=30, frac_nonadditive=0.0, cells_per_condition=200), suite, ["mean", "additive", "additive_ref"], split="double_seen2")
    assert out["additive"]["l2_top1000_ratio_vs_mean"].value < 1
    assert out["additive_ref"]["pearson_delta_pert"].params["vs_mean"]["ci95"][0] > 0


def test_hvg_from_sufficient_statistics_equals_scanpy():
    import anndata as ad
    import scanpy as sc

    from scfm_bench.data.perturbation import load_perturbation
    from scfm_bench.tasks._perturb_core import condition_stats, seurat_hvg

    pdata = load_perturbation(screen(), name="t", fields=PerturbationFields(control_labels=["control"]))
    stats = condition_stats(pdata.X, pdata.conditions)
    ours = seurat_hvg(stats, np.arange(len(stats.names)), 50)
    a = ad.AnnData(pdata.X.copy())
    sc.pp.highly_variable_genes(a, flavor="seurat", n_top_genes=50)
    np.testing.assert_array_equal(ours, a.var["highly_variable"].to_numpy())


@pytest.mark.parametrize("labels, fields, message", [
    (["safe_harbor", "A", "B"], {}, "none of the control labels"),
    (["control", "A", "B", "A_B"], {"control_labels": ["control"]}, "looks like a combination"),
    (["control", "A"], {"control_labels": ["control"]}, "perturbation condition"),
])
def test_bad_labels(labels, fields, message):
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    from scfm_bench.data.perturbation import load_perturbation

    obs = pd.DataFrame({"perturbation": np.repeat(labels, 30)})
    obs.index = obs.index.astype(str)
    X = sp.csr_matrix(np.random.default_rng(0).poisson(3, (len(obs), 20)).astype(np.float32))
    with pytest.raises(DataError, match=message):
        load_perturbation(ad.AnnData(X, obs=obs), name="t", fields=PerturbationFields(**fields))


def test_ctrl_combo_syntax_is_normalised():
    from scfm_bench.data.perturbation import normalise_labels

    out = normalise_labels(np.array(["ctrl", "A+ctrl", "ctrl+B", "B+A"]), name="t", key="condition",
                           fields=PerturbationFields(control_labels=["ctrl"]))
    assert list(out) == ["control", "A", "B", "A+B"]


def test_bad_embedding_files(suite, tmp_path):
    ad = screen()
    genes, emb = synthetic_gene_embeddings(ad, sigma=0.5, seed=0)
    emb[3] = np.nan
    np.savez(tmp_path / "nan.npz", genes=np.array(genes), embeddings=emb)
    np.savez(tmp_path / "ens.npz", genes=np.array([f"ENSG{i:011d}" for i in range(len(genes))]), embeddings=np.ones_like(emb))
    with pytest.raises(DataError, match="NaN"):
        run(ad, suite, ["ridge_x"], embeddings={"x": str(tmp_path / "nan.npz")})
    with pytest.raises(DataError, match="none of the"):
        run(ad, suite, ["ridge_x"], embeddings={"x": str(tmp_path / "ens.npz")})


def test_smoke_on_perturbench_devel(shared_data, suite):
    import anndata as ad

    adata = ad.read_h5ad(shared_data / "perturbench_devel.h5ad")
    entry = DatasetEntry(source="file", path="x", perturbation=PerturbationFields(key="condition", control_labels=["control"]))
    params = PerturbationParams(**{**FAST, "context": "k562", "n_folds": 3})
    res = Perturbation().run_direct(adata, name="devel", entry=entry, models=["mean", "lin_pca", "knn_random"],
                                    params=params, seed=0, suite=suite)
    assert res.info["values"] == "log1p"
    assert res.outcomes["mean"][0].value == 0
    assert all(np.isfinite(o.value) for outs in res.outcomes.values() for o in outs if o.status == "ok")


def test_cli_run_writes_records_and_table(tmp_path):
    from typer.testing import CliRunner

    from scfm_bench.cli import app
    from scfm_bench.records import read_records

    r = CliRunner().invoke(app, ["run", "--task", "perturbation", "--output-dir", str(tmp_path), "--quiet"])
    assert r.exit_code == 0, r.output
    recs = read_records(tmp_path)
    assert {x.model for x in recs} >= {"mean", "lin_pca", "knn_random", "noise_ceiling"}
    table = recs[0].params["per_perturbation_table"]
    assert next(tmp_path.glob(f"runs/*/{table}")).is_file()
