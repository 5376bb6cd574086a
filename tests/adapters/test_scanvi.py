"""scANVI: labels outside the reference never reach the model (no leakage), and reference labels do."""

from __future__ import annotations

import numpy as np
import pytest

from scfm_bench.adapters.scanvi import SCANVI, UNLABELLED, visible_labels
from scfm_bench.exceptions import CellSkipped

FAST = {"max_epochs_cap": 2, "scanvi_max_epochs": 2, "reference_batches": ["batch_0", "batch_1"]}


def _with_labels(ad, labels):
    out = ad.copy()
    out.obs["cell_type"] = labels
    return out


def test_query_labels_do_not_change_the_embedding(tiny_preprocessed):
    """Scrambling the labels of the query batch (batch_2) leaves the scANVI latent bit-identical;
    scrambling reference labels changes it, so the test can see a label that leaks."""
    ad = tiny_preprocessed
    labels = ad.obs["cell_type"].astype(str).to_numpy()
    query = ad.obs["batch"].astype(str).to_numpy() == "batch_2"
    rng = np.random.default_rng(0)
    scrambled_query = labels.copy()
    scrambled_query[query] = rng.permutation(np.unique(labels))[0]  # every query cell relabelled to one type
    scrambled_ref = labels.copy()
    scrambled_ref[~query] = rng.permutation(labels[~query])
    model, blind = SCANVI(FAST, seed=0), SCANVI(FAST, seed=0)
    base = model.embed_batch(ad)
    np.testing.assert_array_equal(base, blind.embed_batch(_with_labels(ad, scrambled_query)))
    assert not np.allclose(base, SCANVI(FAST, seed=0).embed_batch(_with_labels(ad, scrambled_ref)), atol=1e-4)
    assert base.shape == (ad.n_obs, 30) and np.isfinite(base).all()
    # its own predictions do not see the query labels either, and the annotation task scores them (probe
    # "own") and the probes identically on the true labels; protocols testing on seen cells are skipped
    assert model.cell_outputs["predictions"] == blind.cell_outputs["predictions"]
    assert model.cell_outputs["labels_seen"] == np.flatnonzero(~query).tolist()
    out = _annotate(ad, base, model.cell_outputs)
    blind_out = _annotate(ad, base, blind.cell_outputs)
    scored = {i: o.value for i, o in out.items() if o.status == "ok"}
    assert {"own_ref_query_macro_f1", "knn_ref_query_macro_f1"} <= set(scored)
    assert scored == {i: o.value for i, o in blind_out.items() if o.status == "ok"}
    assert out["own_ref_query_macro_f1"].params["n_query_cells"] == int(query.sum())
    for i in ("knn_cv_macro_f1", "own_cv_macro_f1", "knn_fewshot5_macro_f1", "logreg_novel_auroc_maxprob"):
        assert out[i].status == "skipped" and "label leakage" in out[i].reason
    # a model that saw query labels is refused by ref_query too (the check can fail)
    leaky = {**model.cell_outputs, "labels_seen": list(range(ad.n_obs))}
    assert _annotate(ad, base, leaky)["own_ref_query_macro_f1"].status == "skipped"


def _annotate(ad, X, cell_outputs):
    from scfm_bench.config import load_suite
    from scfm_bench.registry import TASKS
    from scfm_bench.tasks import CellOutputs, TaskData

    task = TASKS.get("annotation")
    data = TaskData(adata=ad, labels=ad.obs["cell_type"].astype(str).to_numpy(), batch=ad.obs["batch"].astype(str).to_numpy())
    params = task.Params(protocols=["ref_query", "cv", "fewshot", "novel"], shots=[5], draws=1, probes=["knn", "logreg"],
                         reference_batches=FAST["reference_batches"])
    outputs = CellOutputs.from_meta(SCANVI.input_spec.uses_labels, cell_outputs, ad.n_obs)
    return {o.id: o for o in task().run(data, X, params=params, seed=0, suite=load_suite().metric_suite("annotation"),
                                        cell_outputs=outputs)}


def test_visible_labels_hide_everything_but_the_reference(tiny_preprocessed):
    ad = tiny_preprocessed.copy()
    from scfm_bench.adapters.scanvi import SCANVIParams

    vis = visible_labels(ad, SCANVIParams(**FAST), "scanvi")
    query = ad.obs["batch"].astype(str).to_numpy() == "batch_2"
    assert (vis[query] == UNLABELLED).all() and (vis[~query] == ad.obs["cell_type"].astype(str).to_numpy()[~query]).all()
    ad.obs["scfm_role"] = np.where(query, "reference", "query")  # a pair's role column wins over reference_batches
    vis = visible_labels(ad, SCANVIParams(**FAST), "scanvi")
    assert (vis[~query] == UNLABELLED).all() and (vis[query] != UNLABELLED).all()


def test_without_a_reference_scanvi_is_skipped(tiny_preprocessed):
    with pytest.raises(CellSkipped, match="reference_batches"):
        SCANVI({"max_epochs_cap": 2}, seed=0).embed_batch(tiny_preprocessed)
