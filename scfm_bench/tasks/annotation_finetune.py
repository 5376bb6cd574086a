"""Annotation by fine-tuning (protocol ``finetune``): is training through the model worth it, or does a
classifier on a classical representation match it under the same budget?

A direct task (``DirectTask``): it needs the models themselves, not frozen embeddings, so
the runner loads each adapter and hands it over (``takes_adapters``). Predictors:

* ``head_<m>``, ``lora_<m>``, ``full_<m>`` for a fine-tunable scFM ``m`` (an adapter with
  ``trainable_encoder``: scgpt, geneformer): a one-hidden-layer head on the model's cell vector with
  the encoder frozen (head; the cell vectors are computed once), LoRA adapters (``peft``) on its
  attention/feed-forward layers with the base weights frozen, or every weight trained (full);
* ``mlp_<e>`` for any embedding model ``e`` (baselines ``mlp_hvg``, ``mlp_pca``): the same head
  trained on that embedding;
* ``scanvi``: scvi-tools scANVI's own predictions, trained for the same number of epochs (scVI
  pre-training and scANVI each) with only the training cells' labels visible.

Split: the test cells are the first fold of the annotation task's ``cv`` protocol (same
``n_folds`` and seed, classes with fewer than ``n_folds`` cells excluded), so the scores sit beside
``*_cv_*``'s first fold; a stratified, seeded ``val_fraction`` of the remaining cells is the inner
validation split for early stopping (scANVI sees neither their labels nor the test labels). Every
predictor gets the same budget (``budget``), recorded with the epochs run, the final batch size, the
device and precision, training time and peak memory. Scores use the annotation metric suite with its
plain ids (macro_f1, balanced_accuracy, LCAD... when the dataset declares Cell Ontology ids); the
per-epoch losses are the run's table. PCA and scANVI are transductive (they see the test cells'
expression, never their labels); that is recorded.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from scfm_bench.embed.train import TrainBudget
from scfm_bench.exceptions import CellError, CellFailed, ConfigError, DataError, MissingDependencyError
from scfm_bench.metrics import Outcome
from scfm_bench.registry import ADAPTERS, TASKS
from scfm_bench.tasks._base import DirectResult, DirectTask

log = logging.getLogger(__name__)

MODES = ("head", "lora", "full")


class LoraParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    r: int = Field(8, ge=1, description="LoRA rank.")
    alpha: float = Field(16.0, gt=0, description="LoRA scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the LoRA path.")


class FinetuneParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    budget: TrainBudget = Field(default_factory=TrainBudget, description="Epochs, lr, batch size, weight decay, "
                                  "early-stopping patience, head size: the same for every predictor.")
    lora: LoraParams = Field(default_factory=LoraParams, description="LoRA settings (lora_* predictors).")
    n_folds: int = Field(5, ge=2, description="Test cells: the first fold of the annotation cv protocol with this many folds.")
    val_fraction: float = Field(0.1, gt=0, lt=1, description="Share of the training cells held out (stratified, seeded) for early stopping.")
    precision: Literal["auto", "fp32"] = Field("auto", description="auto: bf16 autocast on CUDA (fp32 on CPU); fp32: never autocast.")
    n_top_genes: int = Field(2000, ge=2, description="Preprocessing: highly variable genes (the runner's default).")
    n_pcs: int = Field(50, ge=2, description="Preprocessing: principal components (the runner's default).")


@dataclass(frozen=True)
class FinetuneData:
    adata: object  # preprocessed: X log-normalised, layers["counts"], var["highly_variable"], obsm["X_pca"]
    y: np.ndarray  # target per cell (Cell Ontology id when declared, else label)
    target: str
    dataset_sha256: str | None


def predictor_parts(model: str) -> tuple[str, str]:
    """(how, model key): ``("scanvi", "scanvi")``, ``("mlp", "pca")``, ``("lora", "scgpt")``..."""
    if model == "scanvi":
        return "scanvi", "scanvi"
    how, _, key = model.partition("_")
    return how, key


@TASKS.register("annotation_finetune")
class AnnotationFinetune(DirectTask):
    key = "annotation_finetune"
    description = ("Annotate cell types by fine-tuning: a head on a frozen scFM, LoRA or full fine-tuning, against an MLP on "
                   "HVG/PCA and scANVI under the same budget (epochs, lr, batch size, early stopping).")
    Params = FinetuneParams
    needs_label = True
    takes_adapters = True  # the runner hands over loaded adapters, not their gene_embeddings
    default_suite = "annotation"

    @staticmethod
    def model_kind(model: str, params: FinetuneParams) -> str:
        return ADAPTERS.get(predictor_parts(model)[1]).kind

    @classmethod
    def adapter_embeddings(cls, models: list[str], params: FinetuneParams) -> set[str]:
        return {predictor_parts(m)[1] for m in models}

    @classmethod
    def models_using(cls, models: list[str], adapter: str) -> list[str]:
        return [m for m in models if predictor_parts(m)[1] == adapter]

    @classmethod
    def check_models(cls, models: list[str], params: FinetuneParams, adapters: set[str]) -> None:
        tunable = sorted(k for k, a in ADAPTERS.items() if hasattr(a, "trainable_encoder"))
        known = (f"Known: scanvi, mlp_<model> (e.g. mlp_hvg, mlp_pca), and {{{','.join(MODES)}}}_<model> with model one of "
                 f"{tunable}.")
        for m in models:
            how, key = predictor_parts(m)
            if how == "scanvi" or (how == "mlp" and key in ADAPTERS):
                continue
            if how == "mlp":
                raise ConfigError(f"annotation_finetune model {m!r}: {key!r} is not a model ({ADAPTERS._unknown_message(key)}). {known}")
            if how not in MODES:
                raise ConfigError(f"annotation_finetune model {m!r}: {how!r} is not a fine-tuning mode "
                                  f"(modes: {', '.join(MODES)}; baselines mlp_<model>, scanvi). {known}")
            if key not in tunable:
                raise ConfigError(f"annotation_finetune model {m!r}: model {key!r} cannot be fine-tuned (its adapter has no "
                                  f"trainable_encoder). Use mlp_{key} for a head on its frozen embedding. {known}")

    # ---- data ----------------------------------------------------------------------------------

    @staticmethod
    def load(adata, *, name, entry, params: FinetuneParams) -> FinetuneData:
        from scfm_bench.data import preprocess

        fields = entry.fields
        col = fields.ontology_id or fields.label
        if col is None or col not in adata.obs:
            raise DataError(f"dataset {name!r}: annotation_finetune needs cell-type labels, and obs has no column {col!r}. "
                            f"Fix: set fields.label (--label-key) to an obs column.")
        ad = preprocess(adata, n_top_genes=params.n_top_genes, n_pcs=params.n_pcs, seed=0)
        # the field map the adapters read (scANVI's batch column), as the runner declares it for embeddings
        ad.uns["scfm_bench_fields"] = {k: v for k, v in fields.model_dump(mode="json").items() if v not in (None, [])}
        return FinetuneData(ad, ad.obs[col].astype(str).to_numpy(), "ontology_id" if fields.ontology_id else "label",
                            getattr(entry, "sha256", None))

    # ---- scoring -------------------------------------------------------------------------------

    def run_direct(self, adata, *, name: str, entry, models: list[str], params: FinetuneParams, seed: int,
                   suite, embedders: dict | None = None, prepared: FinetuneData | None = None):
        import pandas as pd

        from scfm_bench.embed.memory import PeakMemory
        from scfm_bench.tasks._annot_probes import probe_outcomes

        data = prepared if prepared is not None else self.load(adata, name=name, entry=entry, params=params)
        train, val, test, small = finetune_split(data.y, params, seed)
        common = {"protocol": "finetune", "target": data.target, "n_train_cells": int(len(train)), "n_val_cells": int(len(val)),
                  "n_test_cells": int(len(test)), "classes_excluded_from_training": small,
                  "split": f"test: annotation cv fold 1 of {params.n_folds} (seed {seed}); validation: stratified "
                           f"{params.val_fraction} of the rest", "budget": params.budget.model_dump()}
        outcomes, rows, encoders, timings = {}, [], {}, {}
        for m in models:
            how, key = predictor_parts(m)
            adapter = (embedders or {}).get(key)
            if adapter is None:  # the runner could not load it and has recorded why
                outcomes[m] = []
                continue
            t0 = time.perf_counter()
            try:
                with PeakMemory() as pm:
                    pred, history, info = self._predict(how, m, adapter, data, train, val, test, params, seed, encoders)
            except (CellError, MissingDependencyError) as exc:
                status = exc.status if isinstance(exc, CellError) else "failed"
                outcomes[m] = [Outcome("*", "", True, status=status, reason=str(exc))]
                continue
            on_gpu = pm.peak_gpu_mb is not None and str(info.get("device", "cpu")).startswith("cuda")
            extra = {**common, "mode": how, **info, "total_s": time.perf_counter() - t0, "peak_ram_mb": pm.peak_ram_mb,
                     "peak_gpu_mb": pm.peak_gpu_mb, "peak_memory_mb": pm.peak_gpu_mb if on_gpu else pm.peak_ram_mb,
                     "peak_memory_source": "torch.cuda.max_memory_allocated" if on_gpu else "process RSS"}
            outcomes[m] = probe_outcomes(self.score, suite, X=np.empty((len(test), 0)), y=data.y[test], pred=pred, folds=None,
                                         has_ontology=data.target == "ontology_id", knn_method="auto", prefix="", extra=extra)
            rows += [{"model": m, **h} for h in history]
            timings[m] = {"embed_s": extra["total_s"], "peak_ram_mb": pm.peak_ram_mb, "peak_gpu_mb": pm.peak_gpu_mb}
        table = pd.DataFrame(rows, columns=["model", "epoch", "train_loss", "val_loss"])
        return DirectResult(outcomes, table, common, timings)

    def _predict(self, how, model, adapter, data, train, val, test, params, seed, encoders):
        """Test-set predictions, per-epoch history, and what to record."""
        from scfm_bench.embed.train import feature_items, infer

        classes = np.unique(data.y[np.concatenate([train, val])])
        codes = np.searchsorted(classes, data.y)  # only train/val/test cells are read, all of known classes
        device = adapter.device
        if how == "scanvi":
            visible = np.zeros(len(data.y), bool)
            visible[train] = True
            t0 = time.perf_counter()
            pred = adapter.predict_labels(data.adata, data.y, visible, epochs=params.budget.epochs)[test]
            return pred, [], {"device": device, "train_s": time.perf_counter() - t0, "epochs_run": params.budget.epochs,
                              "labels_visible": "training cells only (validation and test cells unlabelled)",
                              "n_labelled_cells": int(visible.sum()), "transductive": True, "early_stopping": False}
        if how == "mlp":
            from scfm_bench.embed import embed

            X = embed(adapter, data.adata, dataset_sha256=data.dataset_sha256 or "", cache=None, device=device).X
            items, collate = feature_items(X)
            return self._train(model, None, None, items, collate, None, classes, codes, train, val, test, params, seed, device,
                               {"features": adapter.key, "transductive": adapter.key in ("pca", "harmony", "scvi", "scanvi")})
        if adapter.key not in encoders:  # tokenised once, shared by the modes
            encoders[adapter.key] = adapter.trainable_encoder(data.adata)
        enc = encoders[adapter.key]
        prep, extra = enc.prepared, {"run_info": dict(adapter.run_info)}
        if how == "head":  # frozen: the cell vectors once, without gradients, then the head alone
            enc.body.eval()
            X = infer(lambda b: enc.forward(enc.body, b), model, prep.dataset, prep.collate, np.arange(prep.n_cells),
                      batch_size=params.budget.batch_size, device=device, precision=params.precision, lengths=prep.lengths)
            items, collate = feature_items(X)
            pred, history, info = self._train(model, None, None, items, collate, None, classes, codes, train, val, test, params,
                                              seed, device, {**extra, "encoder": "frozen (eval mode)"})
            return pred, history, {**info, "total_params": info["total_params"] + sum(p.numel() for p in enc.body.parameters())}
        body = trainable_body(enc, how, params.lora, model)
        return self._train(model, body, enc.forward, prep.dataset, prep.collate, prep.lengths, classes, codes, train, val, test,
                           params, seed, device, {**extra, "lora": params.lora.model_dump() if how == "lora" else None})

    def _train(self, model, body, forward, items, collate, lengths, classes, codes, train, val, test, params, seed, device, extra):
        from scfm_bench.embed.train import build_classifier, fit_classifier, infer

        budget = params.budget
        if body is None:
            in_dim = len(items[0])
        else:
            body.to(device)
            in_dim = int(infer(lambda b: forward(body, b), model, items, collate, train[:1], batch_size=1, device=device,
                               precision="fp32").shape[1])
        net = build_classifier(in_dim, len(classes), budget, body=body, forward=forward, seed=seed)
        fit = fit_classifier(net, items, collate, codes, train, val, budget=budget, device=device, seed=seed, name=model,
                             precision=params.precision, lengths=lengths)
        logits = infer(fit.net, model, items, collate, test, batch_size=fit.info["batch_size_final"], device=device,
                       precision=params.precision, lengths=lengths)
        return classes[logits.argmax(axis=1)], fit.history, {**extra, **fit.info}


def trainable_body(enc, mode: str, lora: LoraParams, model: str):
    """A copy of the encoder's module (the loaded one stays as it is for the other modes) with the
    parameters the mode trains: all of them (full) or only the injected LoRA weights (lora)."""
    import copy

    body = copy.deepcopy(enc.body)
    if mode == "full":
        return body.requires_grad_(True)
    try:
        import peft
    except ImportError as e:
        raise MissingDependencyError(f"model {model!r}: LoRA needs the Python package 'peft' ({e}). "
                                     f"Install it with: pip install 'scfm-bench[scfm]'") from None
    body.requires_grad_(False)
    config = peft.LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=enc.lora_targets)
    body = peft.inject_adapter_in_model(config, body)
    for name, p in body.named_parameters():
        p.requires_grad_("lora_" in name)
    if not any(p.requires_grad for p in body.parameters()):
        raise CellFailed(f"model {model!r}: LoRA found no layer matching {enc.lora_targets!r} in the model.")
    return body


def finetune_split(y: np.ndarray, params: FinetuneParams, seed: int):
    """(train, validation, test, classes excluded): test = the annotation cv protocol's first fold."""
    from sklearn.model_selection import train_test_split

    from scfm_bench.tasks.annotation import _splits

    splits, small = _splits("cv", y, None, params, seed)
    fit, test = splits[0]
    n_val = max(int(round(params.val_fraction * len(fit))), len(np.unique(y[fit])))
    train, val = train_test_split(fit, test_size=n_val, stratify=y[fit], random_state=seed)
    return np.sort(train), np.sort(val), np.sort(test), small
