"""Annotation task: tuned probes and the cv / few-shot / novel / reference->query protocols."""

from __future__ import annotations

import numpy as np
import pytest

from scfm_bench.config import load_suite
from scfm_bench.registry import TASKS
from scfm_bench.tasks import TaskData
from scfm_bench.tasks._annot_probes import ProbeGrid, fit_probe


@pytest.fixture(scope="module")
def suite():
    return load_suite().metric_suite("annotation")


@pytest.fixture(scope="module")
def synth():
    """600 seeded synthetic cells, 6 types with CL ids, 3 batches; preprocessed (PCA)."""
    from scfm_bench.data import BUILDERS, preprocess

    ad = preprocess(BUILDERS["synthetic"](n_cells=600, n_genes=300, n_cell_types=6, cell_type_effect=0.6, seed=0),
                    n_top_genes=200, n_pcs=20)
    return ad, TaskData(adata=ad, labels=ad.obs["cell_type"].astype(str).to_numpy(),
                        batch=ad.obs["batch"].astype(str).to_numpy(),
                        ontology_ids=ad.obs["cell_type_ontology_term_id"].astype(str).to_numpy())


def _run(data, X, suite, **params):
    task = TASKS.get("annotation")
    return {o.id: o for o in task().run(data, X, params=task.Params(**params), seed=0, suite=suite)}


def test_probe_tuning_is_recorded_and_bounded(synth, suite):
    ad, data = synth
    out = _run(data, ad.obsm["X_pca"], suite, protocols=["cv"], probes=["knn", "logreg", "rf"], n_folds=3,
               probe_grid={"knn_k": [1, 5, 400], "logreg_c": [0.01, 1.0]})
    knn = out["knn_cv_macro_f1"].params["probe_params"]
    assert knn["tuned"] == [True] * 3 and set(knn["n_neighbors"]) <= {1, 5}  # 400 exceeds an inner training set
    assert set(out["logreg_cv_macro_f1"].params["probe_params"]["C"]) <= {0.01, 1.0}
    assert out["rf_cv_macro_f1"].params["probe_params"]["tuned"] == [False] * 3
    for p in ("knn", "logreg", "rf"):
        assert out[f"{p}_cv_macro_f1"].status == "ok" and out[f"{p}_cv_macro_f1"].value > 0.3  # 6 types: chance is about 1/6


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_probe_choice_matches_gridsearch(seed):
    """The chosen k is scikit-learn's GridSearchCV choice on the same stratified inner folds."""
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(seed)
    y = np.repeat(["a", "b", "c", "d"], [30, 20, 25, 12])
    X = rng.normal(size=(len(y), 5))
    X[:, 0] += 1.2 * (y == "a")
    X[:, 1] += 0.8 * (y == "b")
    grid = ProbeGrid(knn_k=[1, 3, 9, 27], inner_folds=3)
    _, info = fit_probe("knn", X, y, seed=seed, grid=grid)
    ref = GridSearchCV(KNeighborsClassifier(), {"n_neighbors": [1, 3, 9, 27]}, scoring="f1_macro",
                       cv=StratifiedKFold(3, shuffle=True, random_state=seed)).fit(X, y)
    assert info == {"n_neighbors": ref.best_params_["n_neighbors"], "tuned": True, "inner_folds": 3}


def test_one_shot_is_not_tuned_and_uses_k1():
    X, y = np.eye(3), np.array(["a", "b", "c"])
    est, info = fit_probe("knn", X, y, seed=0, grid=ProbeGrid())
    assert info == {"n_neighbors": 1, "tuned": False}
    assert list(est.predict(X)) == ["a", "b", "c"]


@pytest.mark.slow
def test_fewshot_orders_onehot_pca_random(synth, suite):
    """One-hot labels >= PCA >= random embedding, at every shot count, for both probes."""
    ad, data = synth
    rng = np.random.default_rng(0)
    onehot = (data.ontology_ids[:, None] == np.unique(data.ontology_ids)[None]).astype(float) + rng.normal(0, 0.05, (ad.n_obs, 6))
    random = rng.standard_normal(ad.obsm["X_pca"].shape)
    scores = {name: _run(data, X, suite, protocols=["fewshot"], shots=[1, 5, 10, 50], draws=2)
              for name, X in (("onehot", onehot), ("pca", ad.obsm["X_pca"]), ("random", random))}
    for shots in (1, 5, 10, 50):
        for probe in ("knn", "logreg"):
            f1 = {k: v[f"{probe}_fewshot{shots}_macro_f1"].value for k, v in scores.items()}
            assert f1["onehot"] >= f1["pca"] >= f1["random"], (shots, probe, f1)
    rec = scores["pca"]["knn_fewshot5_macro_f1"].params
    assert rec["shots"] == 5 and rec["n_train_cells"] == 5 * 6 and len(rec["per_draw"]["macro_f1"]) == 2
    assert rec["n_test_cells"] == ad.n_obs - 30
    assert np.mean(rec["per_draw"]["macro_f1"]) == pytest.approx(scores["pca"]["knn_fewshot5_macro_f1"].value)
    assert "knn_fewshot50_lcad" in scores["pca"] and scores["pca"]["knn_fewshot50_lcad"].status == "ok"


def test_fewshot_skips_shots_larger_than_every_class(synth, suite):
    ad, data = synth
    out = _run(data, ad.obsm["X_pca"], suite, protocols=["fewshot"], shots=[500], draws=1, probes=["knn"])
    assert out["knn_fewshot500_macro_f1"].status == "skipped" and "500" in out["knn_fewshot500_macro_f1"].reason


def test_novel_far_type_is_detected(suite):
    """A seeded Gaussian dataset: 5 overlapping types and one 20 sd away; holding that one out, its cells
    get the largest kNN distances (AUROC > 0.9), while overlapping types are hard (AUROC well below)."""
    rng = np.random.default_rng(0)
    ids = ["CL:0000236", "CL:0000624", "CL:0000625", "CL:0000623", "CL:0001054", "CL:0000556"]
    y = np.repeat(ids, 60)
    centres = np.vstack([rng.normal(0, 0.7, (5, 8)), np.full((1, 8), 20.0)])
    X = centres[np.repeat(np.arange(6), 60)] + rng.normal(size=(360, 8))
    import anndata as ad

    data = TaskData(adata=ad.AnnData(X=X), labels=y, batch=None, ontology_ids=y)
    out = _run(data, X, suite, protocols=["novel"], probes=["logreg", "knn"])
    per_type = out["novel_auroc_knn_dist"].params["per_type"]
    assert set(per_type) == set(ids)
    assert per_type["CL:0000556"] > 0.9
    assert np.mean([per_type[t] for t in ids[:5]]) < per_type["CL:0000556"] - 0.2
    for p in ("logreg", "knn"):
        assert out[f"{p}_novel_auroc_maxprob"].status == "ok"
        assert out[f"{p}_novel_auprc_maxprob"].params["unknown_score"] == "1 - max class probability"
        lcad = out[f"{p}_novel_lcad"]
        assert lcad.status == "ok" and lcad.value > 0 and lcad.params["predictions"] == "forced"


def test_ref_query_same_cells_equals_within_dataset(synth, suite):
    """Reference and query holding the same cells: the score equals fitting on those cells and predicting
    them (scikit-learn directly: standardised logistic regression with the grid's single C)."""
    import anndata as ad
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    a, data = synth
    both = ad.AnnData(X=np.zeros((2 * a.n_obs, 1)), obs=pd.DataFrame({"scfm_role": ["reference"] * a.n_obs + ["query"] * a.n_obs}))
    y2 = np.concatenate([data.ontology_ids, data.ontology_ids])
    pair = TaskData(adata=both, labels=y2, batch=None, ontology_ids=y2)
    X = a.obsm["X_pca"]
    out = _run(pair, np.vstack([X, X]), suite, protocols=["ref_query"], probes=["logreg"], probe_grid={"logreg_c": [0.1]})
    pred = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=1000, random_state=0)).fit(X, data.ontology_ids).predict(X)
    assert out["logreg_ref_query_macro_f1"].value == pytest.approx(f1_score(data.ontology_ids, pred, average="macro"), abs=1e-12)
    assert out["logreg_ref_query_onto_exact"].value == pytest.approx(np.mean(pred == data.ontology_ids), abs=1e-12)
    assert out["logreg_ref_query_macro_f1"].params["n_query_cells"] == a.n_obs


def test_ref_query_from_batches_and_skips(synth, suite):
    ad, data = synth
    out = _run(data, ad.obsm["X_pca"], suite, protocols=["ref_query"], reference_batches=["batch_0", "batch_1"])
    rec = out["knn_ref_query_macro_f1"]
    assert rec.status == "ok" and rec.params["n_query_cells"] == int((data.batch == "batch_2").sum())
    bad = _run(data, ad.obsm["X_pca"], suite, protocols=["ref_query"], reference_batches=["nope"])
    assert bad["knn_ref_query_macro_f1"].status == "skipped" and "nope" in bad["knn_ref_query_macro_f1"].reason
    none = _run(data, ad.obsm["X_pca"], suite, protocols=["ref_query"])
    assert none["knn_ref_query_macro_f1"].status == "skipped" and "scfm_role" in none["knn_ref_query_macro_f1"].reason


def test_ref_query_counts_parent_child_at_distance_one(suite):
    """Reference labelled 'T cell' (CL:0000084); query 'mature alpha-beta T cell' (CL:0000791, two steps
    below T cell in the shipped CL: 0000791 -> 0000789 alpha-beta T cell -> 0000084, asserted below) and
    'alpha-beta T cell' (CL:0000789, a direct child). Only the direct child may count at distance 1."""
    import anndata as ad
    import pandas as pd

    from scfm_bench.ontology import load_ontology

    onto = load_ontology()
    assert "CL:0000084" in onto.parents["CL:0000789"] and "CL:0000789" in onto.parents["CL:0000791"]
    assert "CL:0000084" not in onto.parents["CL:0000791"]
    rng = np.random.default_rng(0)
    ref_y = np.repeat(["CL:0000084", "CL:0000236"], 30)
    query_y = np.repeat(["CL:0000789", "CL:0000791", "CL:0000236"], 10)
    y = np.concatenate([ref_y, query_y])
    X = (np.isin(y, ["CL:0000084", "CL:0000789", "CL:0000791"]))[:, None] * 10.0 + rng.normal(size=(90, 3))
    role = ["reference"] * 60 + ["query"] * 30
    data = TaskData(adata=ad.AnnData(X=X, obs=pd.DataFrame({"scfm_role": role})), labels=y, batch=None, ontology_ids=y)
    out = _run(data, X, suite, protocols=["ref_query"], probes=["knn"])
    rec = out["knn_ref_query_onto_within1"]
    assert rec.params["query_cells_unmatched"] == {"CL:0000791": 10}
    assert rec.params["n_query_cells"] == 20
    assert out["knn_ref_query_onto_exact"].value == pytest.approx(0.5)  # B cells right, alpha-beta T never exact
    assert rec.value == pytest.approx(1.0)


def test_ontology_accuracy_metric():
    """Hand-made DAG: b and c under a, d under b. Truth/prediction pairs (b,b) exact; (b,a) parent; (d,a)
    grandparent (not within 1); (c,b) sibling (not within 1): exact 1/4, within1 2/4."""
    from scfm_bench.metrics.ontology_accuracy import ontology_accuracy
    from scfm_bench.ontology import CellOntology

    onto = CellOntology.from_edges([("CL:b", "CL:a"), ("CL:c", "CL:a"), ("CL:d", "CL:b")])
    truth, pred = np.array(["CL:b", "CL:b", "CL:d", "CL:c"]), np.array(["CL:b", "CL:a", "CL:a", "CL:b"])
    res = ontology_accuracy.fn(truth, pred, None, ontology=onto)
    assert res.values == {"exact": 0.25, "within1": 0.5}
