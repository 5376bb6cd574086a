"""annotation_finetune: the training loop (loss goes down, seeded runs bit-identical on CPU), what each
mode trains (head: encoder untouched; LoRA: base unchanged, only LoRA + head trainable; full: encoder
changes), the MLP baseline on a separable problem, scANVI's label masking, bad predictors (exit 2),
and a run through the CLI with tiny checkpoints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).parents[1] / "adapters"))  # the adapters' tiny-checkpoint builders
from tiny_ckpt import ENSEMBL, SYMBOLS, build_geneformer, build_scgpt  # noqa: E402

from scfm_bench.config.schemas import DatasetEntry  # noqa: E402
from scfm_bench.embed.train import TrainBudget, build_classifier, feature_items, fit_classifier, infer  # noqa: E402
from scfm_bench.tasks.annotation_finetune import (AnnotationFinetune, FinetuneParams, finetune_split,  # noqa: E402
                                                  trainable_body)

N_TYPES = 3


def labelled_counts(genes, n_per=20, seed=0):
    """Raw counts where each of 3 types expresses its own block of genes (others rarely): separable, 3 batches."""
    from anndata import AnnData

    rng = np.random.default_rng(seed)
    n, g = n_per * N_TYPES, len(genes)
    types = np.repeat(np.arange(N_TYPES), n_per)
    rate = np.full((n, g), 0.05)
    for t in range(N_TYPES):
        rate[types == t, t * (g // N_TYPES) : (t + 1) * (g // N_TYPES)] = 12.0
    ad = AnnData(sp.csr_matrix(rng.poisson(rate).astype(np.float32)))
    ad.var_names = list(genes)
    ad.obs_names = [f"c{i}" for i in range(n)]
    ad.obs["cell_type"] = [f"type{t}" for t in types]
    ad.obs["batch"] = [f"b{i % 3}" for i in range(n)]
    return ad


ENTRY = DatasetEntry(source="file", path="x.h5ad", fields={"label": "cell_type", "batch": "batch"})


def _params(**budget):
    return FinetuneParams(budget=TrainBudget(**{"epochs": 4, "lr": 3e-3, "batch_size": 8, "patience": 4, **budget}), n_top_genes=40)


def _adapter(kind, tmp_path):
    if kind == "scgpt":
        from scfm_bench.adapters.scgpt import ScGPT

        a = ScGPT({"checkpoint": str(build_scgpt(tmp_path / "scgpt")), "use_hvg": False}, seed=0)
    else:
        from scfm_bench.adapters.geneformer import Geneformer

        a = Geneformer({"checkpoint": str(build_geneformer(tmp_path / "gf"))}, seed=0)
    a.load("cpu")
    return a


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _fit_mode(kind, mode, tmp_path, seed=0):
    """(adapter, trained net, fit result, original encoder state) for one mode on the tiny checkpoint."""
    a = _adapter(kind, tmp_path)
    params = _params()
    data = AnnotationFinetune.load(labelled_counts(SYMBOLS if kind == "scgpt" else ENSEMBL[:39]), name="toy", entry=ENTRY,
                                   params=params)
    train, val, test, _ = finetune_split(data.y, params, seed)
    before = _state(a._body())
    enc = a.trainable_encoder(data.adata)
    body = trainable_body(enc, mode, params.lora, kind)
    classes = np.unique(data.y)
    net = build_classifier(a._forward(a._body(), enc.prepared.collate(enc.prepared.dataset[:1])).shape[1], len(classes),
                           params.budget, body=body, forward=enc.forward, seed=seed)
    fit = fit_classifier(net, enc.prepared.dataset, enc.prepared.collate, np.searchsorted(classes, data.y), train, val,
                         budget=params.budget, device="cpu", seed=seed, name=kind, lengths=enc.prepared.lengths)
    return a, fit, before


@pytest.mark.parametrize("kind", ["scgpt", "geneformer"])
def test_lora_keeps_the_base_and_trains_only_lora_and_head(kind, tmp_path):
    a, fit, before = _fit_mode(kind, "lora", tmp_path)
    trainable = {n for n, p in fit.net.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("head.") for n in trainable)
    assert any("lora_" in n for n in trainable) and any(n.startswith("head.") for n in trainable)
    after = {k.removeprefix("body.").replace("base_layer.", ""): v for k, v in fit.net.state_dict().items()
             if k.startswith("body.") and "lora_" not in k}
    assert set(after) == set(before)
    assert all(torch_equal(after[k], before[k]) for k in before)  # base weights bit-identical
    lora_b = [p for n, p in fit.net.named_parameters() if "lora_B" in n]
    assert any(p.abs().sum() > 0 for p in lora_b)  # LoRA was trained (B starts at zero)
    assert all(torch_equal(v, before[k]) for k, v in a._body().state_dict().items())  # the loaded model untouched


@pytest.mark.parametrize("kind", ["scgpt", "geneformer"])
def test_full_changes_the_encoder_of_a_copy(kind, tmp_path):
    a, fit, before = _fit_mode(kind, "full", tmp_path)
    after = {k.removeprefix("body."): v for k, v in fit.net.state_dict().items() if k.startswith("body.")}
    assert any(not torch_equal(after[k], before[k]) for k in before if before[k].is_floating_point())
    assert all(torch_equal(v, before[k]) for k, v in a._body().state_dict().items())  # other modes start from the original


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


def test_loss_goes_down_and_seeded_runs_are_bit_identical(tmp_path):
    """Full fine-tuning of the tiny scGPT through the task: training loss falls; a second run with the
    same seed gives the same losses and scores exactly; another seed differs."""
    from scfm_bench.config.suite import load_suite

    suite = load_suite(None).metric_suite("annotation")
    ad = labelled_counts(SYMBOLS)
    params = _params(epochs=6, patience=6)

    def run(seed):
        a = _adapter("scgpt", tmp_path)
        res = AnnotationFinetune().run_direct(ad, name="toy", entry=ENTRY, models=["full_scgpt"], params=params, seed=seed,
                                              suite=suite, embedders={"scgpt": a})
        return res.table, {o.id: o.value for o in res.outcomes["full_scgpt"]}

    t1, s1 = run(0)
    losses = t1["train_loss"].to_numpy()
    assert len(losses) == 6 and losses[-1] < 0.7 * losses[0]
    t2, s2 = run(0)
    assert t1.equals(t2) and s1 == s2
    t3, _ = run(1)
    assert not np.array_equal(t3["train_loss"].to_numpy(), losses)


def test_head_mode_leaves_the_encoder_bit_identical(tmp_path):
    from scfm_bench.config.suite import load_suite

    a = _adapter("scgpt", tmp_path)
    before = _state(a.module)
    res = AnnotationFinetune().run_direct(labelled_counts(SYMBOLS), name="toy", entry=ENTRY, models=["head_scgpt"],
                                          params=_params(), seed=0, suite=load_suite(None).metric_suite("annotation"),
                                          embedders={"scgpt": a})
    assert all(torch_equal(v, before[k]) for k, v in a.module.state_dict().items())
    out = {o.id: o for o in res.outcomes["head_scgpt"]}
    assert out["macro_f1"].status == "ok"
    p = out["macro_f1"].params
    assert p["mode"] == "head" and p["trainable_params"] < p["total_params"] and p["encoder"] == "frozen (eval mode)"
    assert p["peak_memory_source"] == "process RSS" and p["peak_memory_mb"] > 0 and p["train_s"] > 0
    assert res.table["train_loss"].iloc[-1] < res.table["train_loss"].iloc[0]


def test_mlp_learns_a_separable_problem(make_blobs):
    X, labels, _ = make_blobs(n_per=60, n_labels=4, dim=20)
    classes, y = np.unique(labels, return_inverse=True)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    train, val, test = order[:150], order[150:180], order[180:]
    items, collate = feature_items(X)
    budget = TrainBudget(epochs=20, lr=1e-3, batch_size=16)
    fit = fit_classifier(build_classifier(X.shape[1], len(classes), budget), items, collate, y, train, val, budget=budget,
                         device="cpu", seed=0, name="mlp")
    pred = infer(fit.net, "mlp", items, collate, test, batch_size=64, device="cpu").argmax(1)
    assert (pred == y[test]).mean() > 0.9
    assert fit.info["epochs_run"] >= fit.info["best_epoch"] >= 1 and fit.info["precision"] == "fp32"


def test_early_stopping_restores_the_best_epoch(make_blobs):
    """lr so high the validation loss blows up after the first epochs: training stops after
    ``patience`` worse epochs and the net scores the best epoch's validation loss."""
    import torch
    import torch.nn.functional as F

    X, labels, _ = make_blobs(n_per=30, n_labels=3, dim=5)
    classes, y = np.unique(labels, return_inverse=True)
    idx = np.arange(len(y))
    train, val = idx[idx % 4 != 0], idx[idx % 4 == 0]
    items, collate = feature_items(X)
    budget = TrainBudget(epochs=30, lr=1.0, batch_size=8, patience=2)
    fit = fit_classifier(build_classifier(5, 3, budget), items, collate, y, train, val, budget=budget, device="cpu", seed=0,
                         name="mlp")
    losses = [h["val_loss"] for h in fit.history]
    assert fit.info["best_epoch"] == int(np.argmin(losses)) + 1 and len(losses) - fit.info["best_epoch"] == 2 < 30
    logits = torch.from_numpy(infer(fit.net, "mlp", items, collate, val, batch_size=64, device="cpu"))
    assert float(F.cross_entropy(logits, torch.as_tensor(y[val]))) == pytest.approx(min(losses), rel=1e-5)


def test_scanvi_sees_only_training_labels(tmp_path):
    """The labels scVI/scANVI receive are the training cells' own, every other cell 'unlabelled'; and
    scrambling every label outside the training cells (validation and test) leaves scANVI's
    predictions identical."""
    from scfm_bench.adapters.scanvi import SCANVI, UNLABELLED

    params = _params(epochs=1)
    data = AnnotationFinetune.load(labelled_counts(SYMBOLS), name="toy", entry=ENTRY, params=params)
    train, val, test, _ = finetune_split(data.y, params, 0)
    task, seen = AnnotationFinetune(), []

    def predict(y):
        a = SCANVI({"n_hidden": 16, "n_latent": 4, "batch_size": 16}, seed=0)
        a.load("cpu")
        train_scvi = a.train_scvi
        a.train_scvi = lambda adata, obs=None, **kw: seen.append(obs["_scfm_label"]) or train_scvi(adata, obs, **kw)
        d = type(data)(data.adata, y, data.target, None)
        return task._predict("scanvi", "scanvi", a, d, train, val, test, params, 0, {})

    pred, _, info = predict(data.y)
    labelled = np.flatnonzero(seen[0] != UNLABELLED)
    assert np.array_equal(labelled, train) and np.array_equal(seen[0][train], data.y[train])
    scrambled = data.y.copy()
    hidden = np.concatenate([val, test])
    scrambled[hidden] = np.random.default_rng(1).permutation(scrambled[hidden])[::-1]
    assert (scrambled[hidden] != data.y[hidden]).any()
    assert np.array_equal(predict(scrambled)[0], pred)
    assert info["n_labelled_cells"] == len(train) and info["epochs_run"] == 1 and len(pred) == len(test)


def test_split_is_the_annotation_cv_first_fold():
    from scfm_bench.tasks.annotation import AnnotationParams, _splits

    y = np.repeat(["a", "b", "c", "d"], [30, 20, 12, 3])  # d: fewer than n_folds cells, excluded
    train, val, test, small = finetune_split(y, FinetuneParams(), 7)
    (fit, fold_test), *_ = _splits("cv", y, None, AnnotationParams(), 7)[0]
    assert np.array_equal(test, np.sort(fold_test)) and np.array_equal(np.sort(np.concatenate([train, val])), np.sort(fit))
    assert small == {"d": 3} and set(y[val]) == {"a", "b", "c"}


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "scfm_bench", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.mark.parametrize("model, words", [("tune_scgpt", ["tune_scgpt", "'tune'", "head, lora, full"]),
                                          ("lora_pca", ["lora_pca", "'pca' cannot be fine-tuned", "mlp_pca"])])
def test_bad_predictors_exit_2_naming_model_and_mode(model, words, tmp_path):
    r = _cli("run", "--task", "annotation_finetune", "--model", model, "--output-dir", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert all(w in r.stderr for w in words), r.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.jsonl"))


def test_not_in_the_default_run():
    from scfm_bench.runner import RunOptions, build_plan

    assert "annotation_finetune" not in build_plan(RunOptions()).tasks
    assert "annotation_finetune" in build_plan(RunOptions(tasks=["annotation_finetune"], models=["mlp_pca"])).tasks


@pytest.mark.slow
def test_through_the_cli_with_a_tiny_checkpoint(tmp_path):
    """mlp_pca, mlp_hvg and the three scGPT modes on an .h5ad: records with the suite's plain ids, the
    budget, time and peak memory (also as the records' timings); the per-epoch table beside them; a model without checkpoint is skipped."""
    ad = labelled_counts(SYMBOLS, n_per=25)
    ad.write_h5ad(tmp_path / "toy.h5ad")
    ckpt = build_scgpt(tmp_path / "scgpt")
    models = ["mlp_pca", "mlp_hvg", "head_scgpt", "lora_scgpt", "full_scgpt", "head_geneformer"]
    r = _cli("run", "--task", "annotation_finetune", "--dataset", str(tmp_path / "toy.h5ad"), "--label-key", "cell_type",
             *[a for m in models for a in ("--model", m)], "--checkpoint", f"scgpt={ckpt}", "--model-param", "scgpt.use_hvg=false",
             "--output-dir", str(tmp_path / "out"), "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    recs = [json.loads(line) for p in (tmp_path / "out").glob("runs/*/records/*.jsonl") for line in p.read_text().splitlines()]
    f1 = {x["model"]: x for x in recs if x["metric"] == "macro_f1"}
    assert set(f1) == set(models) - {"head_geneformer"}
    assert all(x["status"] == "ok" and 0 <= x["value"] <= 1 for x in f1.values())
    assert f1["mlp_pca"]["value"] > 0.9  # the types are separable
    p = f1["lora_scgpt"]["params"]
    assert p["budget"]["epochs"] == 10 and p["mode"] == "lora" and p["lora"]["r"] == 8 and p["device"] == "cpu"
    assert p["peak_memory_mb"] > 0 and p["epochs_run"] >= 1 and p["precision"] == "fp32"
    t = f1["lora_scgpt"]["timings"]  # the leaderboard's efficiency columns: training + prediction, peak RSS
    assert t["embed_s"] == p["total_s"] and t["peak_ram_mb"] == p["peak_ram_mb"] > 0
    skipped = [x for x in recs if x["model"] == "head_geneformer"]
    assert skipped and skipped[0]["status"] == "skipped"
    tables = list((tmp_path / "out").glob("runs/*/tables/annotation_finetune__*.csv"))
    assert tables and "val_loss" in tables[0].read_text()


def test_out_of_memory_halves_the_batch_and_training_goes_on(make_blobs):
    """A net that runs out of memory above 4 cells per batch: the step is retried with halved batches,
    the final size is recorded, and the result equals training at batch size 4 from the start."""
    X, labels, _ = make_blobs(n_per=20, n_labels=3, dim=6)
    classes, y = np.unique(labels, return_inverse=True)
    idx = np.arange(len(y))
    train, val = idx[idx % 5 != 0], idx[idx % 5 == 0]
    items, collate = feature_items(X)

    def fit(batch_size, limit):
        budget = TrainBudget(epochs=2, lr=1e-3, batch_size=batch_size)
        net = build_classifier(6, 3, budget)
        forward = net.forward

        def guarded(batch):
            if len(batch) > limit:
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return forward(batch)

        net.forward = guarded
        return fit_classifier(net, items, collate, y, train, val, budget=budget, device="cpu", seed=0, name="mlp")

    halved, direct = fit(16, 4), fit(4, 4)
    assert halved.info["batch_size_final"] == 4 and halved.history == direct.history


def test_non_finite_training_fails_the_model():
    from scfm_bench.exceptions import CellFailed

    X = np.full((30, 4), np.inf, dtype=np.float32)
    y = np.arange(30) % 2
    items, collate = feature_items(X)
    budget = TrainBudget(epochs=2)
    with pytest.raises(CellFailed, match="'mlp'.*not finite"):
        fit_classifier(build_classifier(4, 2, budget), items, collate, y, np.arange(20), np.arange(20, 30), budget=budget,
                       device="cpu", seed=0, name="mlp")
