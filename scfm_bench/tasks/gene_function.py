"""Gene function: what do a model's gene embeddings know about the Gene Ontology?

A direct task (like perturbation): its "models" are adapters with a
``gene_embeddings(genes)`` method (random, gene_pca, go_leak, the scFMs), which the runner loads and
hands over as callables. Genes in scope are the dataset's genes (symbols or Ensembl ids) that belong to
the GO gene sets; terms keep ``min_term_genes``..``max_term_genes`` of them. Per aspect (BP/MF/CC), a
one-vs-rest logistic-regression probe (headline) and a kNN probe score every term on gene-disjoint,
seeded folds, and a probe-free retrieval asks whether a gene's nearest neighbours share its terms.
A model knowing fewer than ``min_gene_coverage`` of the genes fails (wrong gene namespace, not a score);
the genes it lacks get the mean of its vectors (no information), so all models face the same genes.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from scfm_bench.exceptions import ConfigError, DataError
from scfm_bench.metrics import MetricInputs, Outcome, evaluate_suite
from scfm_bench.registry import METRICS, TASKS
from scfm_bench.tasks._base import DirectResult, DirectTask

log = logging.getLogger(__name__)

Aspect = Literal["BP", "MF", "CC"]
# var columns holding the other gene namespace (the shared-data and CELLxGENE conventions)
_ID_COLUMNS = ("gene_symbol", "feature_name", "gene_name", "ensembl_id", "feature_id", "gene_ids")


class GeneFunctionParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    go: str = Field("default", description="GO gene sets: 'default' (packaged, GO 2022-07-01), 'current' (fetch the "
                                           "datasets.yaml entries go_basic + goa_human), or a folder with either")
    exclude_evidence: list[str] = Field(["IEA", "ND"], description="evidence codes dropped before propagation (non-default go)")
    prune_identity: float = Field(0.9, gt=0, le=1, description="drop a term when a kept descendant holds this share of its genes (non-default go)")
    min_term_genes: int = Field(10, ge=2, description="terms need at least this many member genes in scope")
    max_term_genes: int = Field(500, ge=2, description="terms with more member genes in scope are dropped")
    aspects: list[Aspect] = Field(["BP", "MF", "CC"], description="GO aspects scored")
    n_folds: int = Field(5, ge=2, description="gene-disjoint cross-validation folds (seeded)")
    logreg_c: float = Field(1.0, gt=0, description="inverse L2 strength of the logistic-regression probe (sklearn's C)")
    knn_k: int = Field(10, ge=1, description="neighbours of the kNN probe (cosine)")
    knn_probe: bool = Field(True, description="also score the kNN probe (outcomes knn_*)")
    min_gene_coverage: float = Field(0.5, ge=0, le=1, description="fail a model knowing fewer of the genes in scope")


@dataclass(frozen=True)
class GeneFunctionData:
    genes: list[str]  # symbols in scope, in dataset order
    ensembl: list[tuple[str, ...]]  # each gene's Ensembl ids
    labels: dict[str, np.ndarray]  # aspect -> genes x terms (bool)
    terms: dict[str, list[str]]  # aspect -> GO ids (columns of labels)
    names: dict[str, str]  # GO id -> name
    go_params: dict
    n_dataset_genes: int

    def summary(self) -> dict:
        return {"genes_in_scope": len(self.genes), "dataset_genes": self.n_dataset_genes,
                "terms": {a: len(t) for a, t in self.terms.items()}, "go": self.go_params}


@TASKS.register("gene_function")
class GeneFunction(DirectTask):
    key = "gene_function"
    description = "Predict GO terms (BP/MF/CC) from gene embeddings: probes on gene-disjoint folds, neighbour retrieval."
    Params = GeneFunctionParams
    default_suite = "gene_function"

    @classmethod
    def unsupported(cls, tname: str, entry) -> str | None:
        return None  # any expression matrix gives gene_pca its co-expression; the other models ignore it

    @classmethod
    def adapter_embeddings(cls, models: list[str], params: GeneFunctionParams) -> set[str]:
        return set(models)

    @classmethod
    def check_models(cls, models: list[str], params: GeneFunctionParams, adapters: set[str]) -> None:
        bad = [m for m in models if m not in adapters]
        if bad:
            raise ConfigError(f"gene_function models {bad} have no gene_embeddings. Known: {', '.join(sorted(adapters))}.")

    # ---- data ----------------------------------------------------------------------------------

    @staticmethod
    def load(adata, *, name, entry, params: GeneFunctionParams) -> GeneFunctionData:
        from scfm_bench.data.go import load_gene_sets

        derivation = {"exclude_evidence": sorted(set(params.exclude_evidence)), "prune_identity": params.prune_identity}
        sets = load_gene_sets(params.go, **derivation)
        if params.go == "default" and any(sets.params[k] != v for k, v in derivation.items()):
            raise ConfigError(f"gene_function: the packaged GO default is derived with exclude_evidence "
                              f"{sets.params['exclude_evidence']} and prune_identity {sets.params['prune_identity']}. "
                              f"Fix: keep those, or set params.go to 'current' or a GO folder to derive with yours.")
        symbol_of = {e: s for s, ids in sets.ensembl.items() for e in ids}
        known = set(sets.ensembl) | {s for m in sets.members.values() for s in m}
        ids = [np.asarray(adata.var_names, dtype=str)] + [np.asarray(adata.var[c], dtype=str) for c in _ID_COLUMNS if c in adata.var]
        genes: list[str] = []
        for j in range(adata.n_vars):
            for col in ids:
                g = col[j].split(".")[0] if col[j].startswith("ENS") else col[j]
                g = symbol_of.get(g, g)
                if g in known:
                    genes.append(g)
                    break
        genes = list(dict.fromkeys(genes))
        pos = {g: i for i, g in enumerate(genes)}
        labels, terms = {}, {}
        for aspect in params.aspects:
            cols = []
            for t in sets.aspect(aspect):
                rows = [pos[g] for g in sets.members[t] if g in pos]
                if params.min_term_genes <= len(rows) <= params.max_term_genes:
                    cols.append((t, rows))
            Y = np.zeros((len(genes), len(cols)), dtype=bool)
            for j, (_, rows) in enumerate(cols):
                Y[rows, j] = True
            labels[aspect], terms[aspect] = Y, [t for t, _ in cols]
        empty = [a for a in params.aspects if len(terms[a]) < 2]
        if len(genes) < 4 * params.n_folds or empty:
            raise DataError(f"dataset {name!r}: {len(genes)} of its {adata.n_vars} genes are in the GO gene sets "
                            f"({params.go}), and aspects {empty or 'all'} keep fewer than 2 terms with "
                            f">= {params.min_term_genes} of them. Fix: use a human dataset with gene symbols or Ensembl ids "
                            f"(var_names or var['gene_symbol'/'ensembl_id']), or lower params.min_term_genes.")
        log.info("gene_function on %s: %d genes in scope, terms %s", name, len(genes), {a: len(t) for a, t in terms.items()})
        return GeneFunctionData(genes, [sets.ensembl.get(g, ()) for g in genes], labels, terms,
                                sets.terms["name"].to_dict(), sets.params, adata.n_vars)

    # ---- scoring -------------------------------------------------------------------------------

    def run_direct(self, adata, *, name: str, entry, models: list[str], params: GeneFunctionParams, seed: int,
                   suite, embedders: dict | None = None, prepared: GeneFunctionData | None = None) -> DirectResult:
        import pandas as pd

        data = prepared if prepared is not None else self.load(adata, name=name, entry=entry, params=params)
        folds = np.random.default_rng(seed).permutation(len(data.genes)) % params.n_folds  # gene-disjoint
        probe_suite, embed_suite = _split_suite(suite)
        outcomes, rows, coverage = {}, [], {}
        for m in models:
            embedder = (embedders or {}).get(m)
            if embedder is None:  # the runner could not load it and has recorded why
                outcomes[m] = []
                continue
            X, cov, why = _gene_matrix(m, embedder, data, adata, params.min_gene_coverage)
            coverage[m] = cov
            if why:
                outcomes[m] = [Outcome("*", "", True, status="failed", reason=why, params={"gene_coverage": cov})]
                continue
            outcomes[m], table = self._score(X, data, params, folds, probe_suite, embed_suite, cov)
            rows += [{"model": m, **r} for r in table]
        info = {**data.summary(), "n_folds": params.n_folds, "gene_coverage": coverage}
        return DirectResult(outcomes, pd.DataFrame(rows), info)

    def _score(self, X, data, params, folds, probe_suite, embed_suite, cov):
        from threadpoolctl import threadpool_limits

        from scfm_bench.metrics.term_ranking import average_precision, roc_auc

        per: dict[str, list[Outcome]] = {}
        table = []
        probes = ["logreg"] + (["knn"] if params.knn_probe else [])
        common = {"gene_coverage": cov, "genes_in_scope": len(data.genes), "n_folds": params.n_folds, "go": data.go_params}
        # each probe is fitted once on the terms of all aspects (one joint solve per fold), then split by aspect
        Y_all = np.hstack([data.labels[a] for a in params.aspects])
        edges = np.cumsum([0] + [data.labels[a].shape[1] for a in params.aspects])
        with threadpool_limits(1, "blas"):  # small products: BLAS threads cost more than they give (30x on a busy machine)
            scores = {p: _logreg_oof(X, Y_all, folds, params.logreg_c) if p == "logreg" else _knn_oof(X, Y_all, folds, params.knn_k)
                      for p in probes}
        for i, aspect in enumerate(params.aspects):
            Y = data.labels[aspect]
            suffix = f"_{aspect.lower()}"
            for probe in probes:
                S = scores[probe][:, edges[i]:edges[i + 1]]
                prefix = "" if probe == "logreg" else "knn_"
                inputs = MetricInputs(X=np.empty((0, 0)), go_labels=Y, go_scores=S)
                for o in evaluate_suite(probe_suite, inputs):
                    if prefix and o.family == "chance":  # the same term prevalences as the headline probe's
                        continue
                    per.setdefault(prefix + o.id, []).append(_renamed(o, prefix + o.id + suffix, aspect, Y, common))
                table += [{"probe": probe, "aspect": aspect, "go_id": t, "name": data.names.get(t, ""), "n_genes": int(n),
                           "prevalence": float(p), "auprc": float(ap), "auroc": float(auc)}
                          for t, n, p, ap, auc in zip(data.terms[aspect], Y.sum(0), Y.mean(0), average_precision(Y, S), roc_auc(Y, S))]
            for o in evaluate_suite(embed_suite, MetricInputs(X=X, go_labels=Y)):
                per.setdefault(o.id, []).append(_renamed(o, o.id + suffix, aspect, Y, common))
        out = [o for group in per.values() for o in group]
        for oid, group in per.items():  # unsuffixed id: the mean over aspects (the headline columns)
            ok = [o for o in group if o.status == "ok"]
            if len(ok) == len(group):
                out.append(Outcome(oid, group[0].family, group[0].higher_is_better, float(np.mean([o.value for o in ok])),
                                   params={**common, "aspects": list(params.aspects), "definition": "mean over aspects"}))
        return out, table


def _split_suite(suite):
    """The suite's probe metrics (on out-of-fold term scores) and its embedding metrics (on X)."""
    probe = [e for e in suite.metrics if "go_scores" in METRICS.get(e.metric).spec.inputs]
    rest = [e for e in suite.metrics if e not in probe]
    return suite.model_copy(update={"metrics": probe}), suite.model_copy(update={"metrics": rest})


def _renamed(o: Outcome, oid: str, aspect: str, Y: np.ndarray, common: dict) -> Outcome:
    return Outcome(oid, o.family, o.higher_is_better, o.value, o.status, o.reason and o.reason.replace(o.id, oid, 1),
                   o.metric_s, {**o.params, **common, "aspect": aspect, "n_terms": int(Y.shape[1])})


def _gene_matrix(model, embedder, data: GeneFunctionData, adata, min_coverage: float):
    """Genes x d from the model (symbols first, then Ensembl ids for genes still unknown), its coverage,
    and why it is unusable (None when usable). Unknown genes get the mean of the known rows."""
    call = (lambda ids: embedder(ids, adata=adata)) if "adata" in inspect.signature(embedder).parameters else embedder
    n = len(data.genes)
    X = np.asarray(call(data.genes), dtype=np.float64)
    if X.ndim != 2 or len(X) != n or X.shape[1] < 1:
        return None, {}, f"model {model!r}: gene_embeddings returned shape {X.shape} for {n} genes"
    ok = np.isfinite(X).all(1)
    by_symbol = int(ok.sum())
    ask = [(i, e) for i in np.flatnonzero(~ok) for e in data.ensembl[i]]
    if ask:
        E = np.asarray(call([e for _, e in ask]), dtype=np.float64)
        for (i, _), row in zip(ask, E):
            if not ok[i] and np.isfinite(row).all():
                X[i], ok[i] = row, True
    cov = {"genes": n, "covered": int(ok.sum()), "by_symbol": by_symbol, "by_ensembl": int(ok.sum()) - by_symbol,
           "fraction": float(ok.mean()), "missing": [data.genes[i] for i in np.flatnonzero(~ok)[:20]]}
    if ok.mean() < min_coverage:
        return None, cov, (f"model {model!r} knows {int(ok.sum())} of the {n} genes in scope ({ok.mean():.0%} < "
                           f"min_gene_coverage {min_coverage:.0%}; e.g. unknown: {cov['missing'][:5]}): its vocabulary "
                           f"uses other gene ids (symbols vs Ensembl?) or another organism")
    if np.ptp(X[ok], axis=0).max() == 0:
        return None, cov, f"model {model!r}: its gene embeddings are constant"
    X[~ok] = X[ok].mean(0)
    if not ok.all():
        log.warning("model %r lacks %d of %d genes in scope (e.g. %s): they get its mean vector", model, n - ok.sum(), n,
                    ", ".join(cov["missing"][:5]))
    return X, cov, None


def _standardise(X_train: np.ndarray, X_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu, sd = X_train.mean(0), X_train.std(0)
    sd[sd == 0] = 1.0
    return (X_train - mu) / sd, (X_test - mu) / sd


def logreg_fit(X: np.ndarray, Y: np.ndarray, *, C: float = 1.0, tol: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """One L2-penalised logistic regression per column of Y with scikit-learn's objective
    (C·Σ log-loss + ½‖w‖², intercept unpenalised; divided by n, as its lbfgs solver does), solved jointly
    by L-BFGS: the loss is a sum of independent problems. The optimum lies in the row space of X, so
    the solve runs on X's principal axes (at most n of them) and maps back exactly."""
    from scipy.optimize import minimize
    from scipy.special import expit

    n = len(X)
    _, sv, Vt = np.linalg.svd(X, full_matrices=False)
    V = Vt[sv > sv[0] * 1e-10].T if len(sv) and sv[0] > 0 else np.zeros((X.shape[1], 1))
    Xb = np.hstack([X @ V, np.ones((n, 1))])
    d, T = V.shape[1], Y.shape[1]
    Yf = Y.astype(np.float64)

    def loss(w):
        W = w.reshape(d + 1, T)
        Z = Xb @ W
        value = (C * (np.logaddexp(0, Z).sum() - (Yf * Z).sum()) + 0.5 * (W[:-1] ** 2).sum()) / n
        grad = C * (Xb.T @ (expit(Z) - Yf))
        grad[:-1] += W[:-1]
        return value, grad.ravel() / n

    res = minimize(loss, np.zeros((d + 1) * T), jac=True, method="L-BFGS-B", options={"maxiter": 1000, "gtol": tol, "ftol": tol * 1e-5})
    W = res.x.reshape(d + 1, T)
    return V @ W[:-1], W[-1]


def _logreg_oof(X, Y, folds, C):
    from scipy.special import expit

    S = np.zeros(Y.shape)
    for f in np.unique(folds):
        test = folds == f
        Xtr, Xte = _standardise(X[~test], X[test])
        W, b = logreg_fit(Xtr, Y[~test], C=C)
        S[test] = expit(Xte @ W + b)
    return S


def _knn_oof(X, Y, folds, k):
    """Each test gene's score for a term: the share of its k nearest training genes (cosine) in the term."""
    from sklearn.neighbors import NearestNeighbors

    S = np.zeros(Y.shape)
    for f in np.unique(folds):
        test = folds == f
        kk = min(k, int((~test).sum()))
        nn = NearestNeighbors(n_neighbors=kk, metric="cosine", algorithm="brute").fit(X[~test])
        idx = nn.kneighbors(X[test], return_distance=False)
        S[test] = Y[~test][idx].mean(1)
    return S
