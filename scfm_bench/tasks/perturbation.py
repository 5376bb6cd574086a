"""Perturbation: predict the pseudobulk response of held-out genetic perturbations (spec perturbation.md).

A direct task (it consumes the dataset itself, unlike the embedding tasks): its "models"
are predictors — baselines (``no_change``, ``mean``, ``additive``, ``additive_ref``, ``lin_pca``), probes
``lin_<emb>`` / ``ridge_<emb>`` / ``knn_<emb>`` over perturbation embeddings (``pca`` of training data,
a matched-dimension ``random`` control, gene-embedding files in ``params.embeddings``, or any adapter
with a ``gene_embeddings`` method) and the split-half ``noise_ceiling``. One run per seed scores all
of them on the same folds, so paired statistics against ``mean`` and ``random`` come for free.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from scfm_bench.data.perturb_sim import replicate_draw
from scfm_bench.data.perturbation import CONTROL, PerturbationData, load_perturbation
from scfm_bench.exceptions import CellSkipped, ConfigError, DataError
from scfm_bench.metrics import MetricInputs, Outcome, PerturbationEval, Units
from scfm_bench.metrics.perturbation import rowwise_pearson
from scfm_bench.registry import METRICS, TASKS
from scfm_bench.tasks._base import DirectResult, DirectTask
from scfm_bench.tasks._perturb_core import (
    GeneEmbedder, fit_predict, pca_scores, project, replicate_stats, seurat_hvg, set_embeddings, split_folds,
    split_half_stats, welch_t)
from scfm_bench.tasks._perturb_stats import paired_stats

log = logging.getLogger(__name__)

BASELINES = ("no_change", "mean", "additive", "additive_ref", "lin_pca", "noise_ceiling", "replicate_ceiling")
_NO_REPLICATE = ("replicate_ceiling needs an independent replicate draw, which only the perturbation_synthetic "
                 "generator provides; on real screens the split-half noise_ceiling is the positive control")
PROBES = ("lin", "ridge", "knn")
_CORRELATIONS = {"pearson_delta_pert", "pearson_delta_ctrl"}


class PerturbationParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    split: Literal["single_unseen", "double_seen2", "shift", "gears_simulation"] = Field(
        "single_unseen", description="S1 unseen singles (k-fold), S2 held-out doubles with seen singles, S3 leave-cluster-out, "
                                     "or GEARS' simulation split (results also by subgroup combo_seen0/1/2, unseen_single)")
    n_folds: int = Field(5, ge=2, description="S1 folds over single perturbations")
    double_train_fraction: float = Field(0.5, gt=0, lt=1, description="S2: share of doubles used for training")
    n_clusters: int = Field(5, ge=2, description="S3: k-means clusters of single-perturbation signatures")
    gears_train_gene_fraction: float = Field(
        0.75, gt=0, lt=1, description="gears_simulation: share of target genes seen in training (GEARS prepare_split's "
                                      "default; its DataSplitter.get_simulation_split defaults to 0.85: match the paper you compare to)")
    gears_combo_seen2_train_fraction: float = Field(
        0.75, gt=0, lt=1, description="gears_simulation: share of combinations with both genes seen that trains")
    min_cells: int = Field(20, ge=2, description="conditions with fewer cells are dropped (counted in the records)")
    min_gene_total: float = Field(5, ge=0, description="genes with total count <= this are dropped")
    n_hvg: int = Field(2000, ge=10, description="read-out genes H (seurat HVGs of controls + training cells)")
    n_top_expressed: int = Field(1000, ge=10, description="E: genes with the highest control mean (L2 metric)")
    n_de: int = Field(20, ge=2, description="DE genes per perturbation (largest |Welch t| vs control)")
    keep_target_genes: bool = Field(False, description="score target genes too (reproduces legacy numbers)")
    lin_pca_dims: int = Field(10, ge=1, description="K of lin_pca and of G in lin_<emb>")
    lin_pca_lambda: float = Field(0.1, gt=0, description="ridge λ of lin_pca")
    grid_dims: list[int] = Field([5, 10, 20, 50], description="probe grid: embedding PCA dims K_e")
    grid_lambda: list[float] = Field([0.01, 0.1, 1, 10], description="probe grid: ridge λ (lin, ridge)")
    grid_k: list[int] = Field([3, 5, 10], description="probe grid: neighbours (knn)")
    inner_val_fraction: float = Field(0.2, gt=0, lt=1, description="share of training perturbations for the grid search")
    random_dim: int | None = Field(None, ge=1, description="dimension of the random embedding (default: largest model embedding, else 512)")
    embeddings: dict[str, str] = Field(default_factory=dict, description="name -> gene-embedding file (.npz genes/embeddings or .tsv)")
    n_bootstrap: int = Field(10_000, ge=100, description="paired bootstrap resamples")
    perturbation_key: str | None = Field(None, description="override the dataset's perturbation.key")
    control_label: list[str] | None = Field(None, description="override perturbation.control_labels")
    combo_delim: str | None = Field(None, description="override perturbation.combo_delim")
    context_key: str | None = Field("cell_type", description="obs column of cellular contexts")
    context: str | None = Field(None, description="which context to score when there are several")


@TASKS.register("perturbation")
class Perturbation(DirectTask):
    key = "perturbation"
    description = "Predict pseudobulk responses of held-out perturbations; calibrated metrics, strong simple baselines."
    Params = PerturbationParams

    @classmethod
    def unsupported(cls, tname: str, entry) -> str | None:
        if entry.perturbation is None:
            return (f"not a perturbation screen (no perturbation: field map in datasets.yaml; "
                    f"--task {tname} reads a file as one)")
        return None
    default_suite = "perturbation"

    @staticmethod
    def model_kind(model: str, params: PerturbationParams) -> str:
        """What the leaderboard may rank: ceilings and the random-embedding probes are reference rows."""
        emb = model.partition("_")[2] if model.partition("_")[0] in PROBES else None
        if model in ("noise_ceiling", "replicate_ceiling"):
            return "ceiling"
        if emb == "random":
            return "control"
        return "baseline" if emb in (None, "pca") else "external" if emb in params.embeddings else "scfm"

    @staticmethod
    def embedding_names(models: list[str]) -> set[str]:
        return {m.split("_", 1)[1] for m in models if m.split("_", 1)[0] in PROBES and m != "lin_pca"}

    @classmethod
    def adapter_embeddings(cls, models: list[str], params: PerturbationParams) -> set[str]:
        """Embedding names the runner must get from an adapter's ``gene_embeddings`` (built-ins and files win)."""
        return cls.embedding_names(models) - {"pca", "random"} - set(params.embeddings)

    @classmethod
    def models_using(cls, models: list[str], adapter: str) -> list[str]:
        """The probes ``{lin,ridge,knn}_<adapter>`` on an adapter's gene embeddings."""
        return [m for m in models if m.partition("_")[0] in PROBES and m.partition("_")[2] == adapter]

    @classmethod
    def check_models(cls, models: list[str], params: PerturbationParams, adapters: set[str]) -> None:
        known = {"pca", "random", *params.embeddings, *adapters}
        for m in models:
            if m in BASELINES:
                continue
            kind, _, emb = m.partition("_")
            if kind not in PROBES or emb not in known:
                raise ConfigError(
                    f"perturbation model {m!r} is not a predictor. Known: {', '.join(BASELINES)}, and "
                    f"{{lin,ridge,knn}}_<embedding> with embedding one of {sorted(known)} (files in params.embeddings, "
                    f"or a model with gene_embeddings).")

    def run_direct(self, adata, *, name: str, entry, models: list[str], params: PerturbationParams, seed: int,
                   suite, embedders: dict[str, GeneEmbedder] | None = None,
                   prepared: PerturbationData | None = None) -> DirectResult:
        """Score every predictor in ``models`` on the folds of ``params.split``; ``prepared`` is the
        result of :meth:`load` when the caller already validated the dataset (it is then not reloaded)."""
        import pandas as pd

        pdata = prepared if prepared is not None else self.load(adata, name=name, entry=entry, params=params)
        stats, half_a, half_b = split_half_stats(pdata.X, pdata.conditions, seed=seed)
        ctrl = stats.names.index(CONTROL)
        perts = [c for c in stats.names if c != CONTROL]
        gene_pos = {g: i for i, g in enumerate(pdata.genes)}
        vectors, coverage, bad = self._vectors(models, params, pdata, embedders or {}, seed)
        failed = {m: bad[m.partition("_")[2]] for m in models if m.partition("_")[0] in PROBES and m.partition("_")[2] in bad}
        models = [m for m in models if m not in failed]

        signatures = None
        if params.split == "shift":
            hv = seurat_hvg(stats, np.arange(len(stats.names)), params.n_hvg)
            singles = [p for p in perts if "+" not in p]
            signatures = stats.mean[stats.index(singles)][:, hv] - stats.mean[ctrl, hv]
        folds = split_folds(perts, params.split, seed=seed, n_folds=params.n_folds, n_clusters=params.n_clusters,
                            double_train_fraction=params.double_train_fraction, signatures=signatures,
                            gears_train_gene_fraction=params.gears_train_gene_fraction,
                            gears_combo_seen2_train_fraction=params.gears_combo_seen2_train_fraction)
        if not folds:
            raise CellSkipped(f"split {params.split!r} has no usable test set on {name!r} (too few perturbations of that kind)")
        halves = {"a": half_a, "b": half_b}
        replicate = None
        if "replicate_ceiling" in models:
            blocks = replicate_draw(adata)
            if blocks is not None:
                replicate = replicate_stats(blocks, genes=pdata.genes, all_genes=adata.var_names.astype(str).to_numpy(),
                                            names=stats.names, counts=pdata.values == "counts")

        rows, hyper = [], {m: [] for m in models}
        for f, (train, test, groups) in enumerate(folds):
            ev, preds, covered, hp, truth_b = self._fold(stats, ctrl, train, test, models, params, vectors, gene_pos, seed, halves,
                                                           replicate)
            for m in models:
                hyper[m].append(hp.get(m))
                pe = PerturbationEval(pred=preds[m], **(ev if m != "noise_ceiling" else {**ev, "truth": truth_b}))
                values = {e.id: METRICS.get(e.metric)(MetricInputs(X=np.empty(0), perturbation=pe), **e.kwargs)
                          for e in suite.metrics}
                if m == "noise_ceiling":  # split-half correlations understate the full-data ceiling
                    values = {k: (2 * v / (1 + v) if METRICS.get(_metric_of(suite, k)).spec.key in _CORRELATIONS else v)
                              for k, v in values.items()}
                effect = np.linalg.norm((ev["truth"] - ev["reference"]) * ev["hvg"], axis=1)
                for i, p in enumerate(test):
                    rows.append({"fold": f, "perturbation": p, "subgroup": groups[p], "model": m, "covered": bool(covered[m][i]),
                                 "effect_size": float(effect[i]), **{k: float(v[i]) for k, v in values.items()}})
        table = pd.DataFrame(rows)
        info = {"split": params.split, "n_folds": len(folds), **pdata.summary(), "gene_embedding_coverage": coverage}
        outcomes = self._outcomes(table, models, suite, params, seed, hyper, info)
        outcomes.update({m: [Outcome("*", "", True, status="failed", reason=why)] for m, why in failed.items()})
        return DirectResult(outcomes, table, info)

    # ---- data ----------------------------------------------------------------------------------

    @staticmethod
    def load(adata, *, name, entry, params: PerturbationParams) -> PerturbationData:
        from scfm_bench.config.schemas import PerturbationFields

        fields = entry.perturbation or PerturbationFields()
        overrides = {k: v for k, v in {"key": params.perturbation_key, "control_labels": params.control_label,
                                       "combo_delim": params.combo_delim}.items() if v is not None}
        return load_perturbation(adata, name=name, fields=fields.model_copy(update=overrides), min_cells=params.min_cells,
                                 min_gene_total=params.min_gene_total, context_key=params.context_key, context=params.context)

    def _vectors(self, models, params, pdata, embedders, seed):
        """Gene -> vector per embedding (``pca`` is fitted per fold: None here; ``random`` last), the
        coverage of the target genes by each external embedding, and why an adapter's output is unusable."""
        out: dict[str, dict[str, np.ndarray] | None] = {}
        coverage, bad = {}, {}
        targets = sorted({t for p in pdata.perturbations for t in p.split("+")})
        for emb in sorted(self.embedding_names(models) - {"pca", "random"}):
            if emb in params.embeddings:
                out[emb] = read_gene_embeddings(Path(params.embeddings[emb]), name=emb, targets=targets)
            else:
                mat = np.asarray(embedders[emb](targets), dtype=np.float64)
                ok = np.isfinite(mat).all(1) if mat.ndim == 2 and len(mat) == len(targets) else None
                if ok is None or not ok.any():
                    bad[emb] = (f"model {emb!r}: gene_embeddings returned shape {mat.shape} for {len(targets)} target genes"
                                if ok is None else
                                f"model {emb!r} knows none of the {len(targets)} target genes (e.g. {targets[:3]}): "
                                f"its vocabulary uses other gene ids (symbols vs Ensembl?)")
                    continue
                out[emb] = {t: mat[i] for i, t in enumerate(targets) if ok[i]}
            missing = [t for t in targets if t not in out[emb]]
            coverage[emb] = {"targets": len(targets), "covered": len(targets) - len(missing), "missing": missing[:20]}
            if missing:
                log.warning("gene embedding %r lacks %d of %d target genes (%s): their perturbations fall back to the mean",
                            emb, len(missing), len(targets), ", ".join(missing[:5]))
        if "pca" in self.embedding_names(models):
            out["pca"] = None
        if "random" in self.embedding_names(models):
            dims = [len(next(iter(v.values()))) for v in out.values() if v]
            d = params.random_dim or (max(dims) if dims else 512)
            universe = sorted(set(targets) | set(pdata.genes))
            mat = np.random.default_rng([seed, 2]).standard_normal((len(universe), d))
            out["random"] = dict(zip(universe, mat))
        return out, coverage, bad

    # ---- one fold ------------------------------------------------------------------------------

    def _fold(self, stats, ctrl, train, test, models, params, vectors, gene_pos, seed, halves, replicate):
        tr, te = stats.index(train), stats.index(test)
        n_genes = stats.mean.shape[1]
        c = stats.mean[ctrl]
        H = seurat_hvg(stats, np.r_[ctrl, tr], params.n_hvg)
        E = np.zeros(n_genes, dtype=bool)
        E[np.argsort(-c, kind="stable")[: params.n_top_expressed]] = True
        target_idx = [[gene_pos[t] for t in p.split("+") if t in gene_pos] for p in test]
        hvg, top = np.tile(H, (len(test), 1)), np.tile(E, (len(test), 1))
        shared = H.copy()
        if not params.keep_target_genes:
            for i, idx in enumerate(target_idx):
                hvg[i, idx] = top[i, idx] = shared[idx] = False
        t = np.abs(welch_t(stats, te, ctrl))
        de = np.argsort(-np.where(hvg, t, -np.inf), axis=1, kind="stable")[:, : params.n_de]

        Y = (stats.mean[tr] - c).T  # genes × m
        b = Y.mean(1)
        r = c + b
        truth = stats.mean[te]
        ev = dict(truth=truth, control=c, reference=r, hvg=hvg, shared_hvg=shared, top_expressed=top, de=de)

        preds, covered, hp = {}, {}, {}
        base = np.tile(r, (len(test), 1))
        single_x = {p: stats.mean[i] for p, i in zip(train, tr) if "+" not in p}
        G = pca_scores(stats.mean[tr].T, params.lin_pca_dims)
        for m in models:
            cov = np.ones(len(test), dtype=bool)
            if m == "no_change":
                pred = np.tile(c, (len(test), 1))
            elif m == "mean":
                pred = base
            elif m in ("additive", "additive_ref"):
                cov = np.array(["+" in p and all(t in single_x for t in p.split("+")) for p in test])
                if not cov.any():
                    reason = f"{m} needs test combinations whose singles were all trained on (split double_seen2)"
                    preds[m], covered[m], hp[m] = base, cov, {"skipped": reason}
                    continue
                # the rest (unseen singles, combo_seen0/1 of the GEARS split) fall back to the mean
                sums = np.array([np.sum([single_x.get(t, c) for t in p.split("+")], 0) for p in test])
                n_t = np.array([len(p.split("+")) for p in test])[:, None]
                pred = c + (sums - n_t * c) if m == "additive" else sums - (n_t - 1) * r
                pred = np.where(cov[:, None], pred, base)
            elif m == "lin_pca":
                gvec = {g: G[i] for g, i in gene_pos.items()}
                P_tr, _ = set_embeddings(gvec, train)
                P_te, cov = set_embeddings(gvec, test)
                delta = fit_predict("lin", Y - b[:, None], P_tr, P_te, lam=params.lin_pca_lambda, k=0, G=G)
                pred = np.where(cov[:, None], r + delta.T, base)
            elif m == "noise_ceiling":
                pred = halves["a"].mean[halves["a"].index(test)]
            elif m == "replicate_ceiling":
                if replicate is None:
                    preds[m], covered[m], hp[m] = base, np.zeros(len(test), bool), {"skipped": _NO_REPLICATE}
                    continue
                pred = replicate.mean[replicate.index(test)]
            else:
                kind, _, emb = m.partition("_")
                vec = vectors[emb] if vectors[emb] is not None else {
                    g: row for g, row in zip(gene_pos, pca_scores(stats.mean[tr].T, max(params.grid_dims)))}
                pred, cov, hp[m] = self._probe(kind, vec, Y, b, r, c, G, train, test, H, params, seed)
            preds[m], covered[m] = pred, cov
        # the ceiling scores half A against half B; everyone else against all cells
        truth_b = halves["b"].mean[halves["b"].index(test)]
        return ev, preds, covered, hp, truth_b

    def _probe(self, kind, vec, Y, b, r, c, G, train, test, H, params, seed):
        P_tr_all, cov_tr = set_embeddings(vec, train)
        P_te_all, cov = set_embeddings(vec, test)
        base = np.tile(r, (len(test), 1))
        if cov_tr.sum() < 3 or not cov.any():
            return base, np.zeros(len(test), bool), {"fallback": "too few covered perturbations"}
        Ytr = Y[:, cov_tr]
        P_tr = P_tr_all[cov_tr]
        # grid search on an inner validation split of the (covered) training perturbations
        rng = np.random.default_rng([seed, 3])
        order = rng.permutation(len(P_tr))
        n_val = max(1, int(round(params.inner_val_fraction * len(P_tr))))
        val, fit = order[:n_val], order[n_val:]
        b_in = Ytr[:, fit].mean(1)
        grid = [(d, lam, k) for d in params.grid_dims for lam in (params.grid_lambda if kind != "knn" else [0.0])
                for k in (params.grid_k if kind == "knn" else [0])]
        best, best_score = grid[0], -np.inf
        for d, lam, k in grid:
            a, v = project(P_tr[fit], P_tr[val], d)
            delta = fit_predict(kind, Ytr[:, fit] - b_in[:, None], a, v, lam=lam, k=k, G=G)
            score = rowwise_pearson(delta.T, (Ytr[:, val] - b_in[:, None]).T, np.tile(H, (len(val), 1))).mean()
            if score > best_score:
                best, best_score = (d, lam, k), score
        d, lam, k = best
        a, v = project(P_tr, P_te_all, d)
        delta = fit_predict(kind, Ytr - Ytr.mean(1, keepdims=True), a, v, lam=lam, k=k, G=G)
        pred = np.where(cov[:, None], r + delta.T, base)
        return pred, cov, {"dims": d, "lambda": lam if kind != "knn" else None, "k": k if kind == "knn" else None}

    # ---- aggregation ---------------------------------------------------------------------------

    def _outcomes(self, table, models, suite, params, seed, hyper, info) -> dict[str, list[Outcome]]:
        ids = [e.id for e in suite.metrics]
        scored = [m for m in models if not any(isinstance(h, dict) and "skipped" in h for h in hyper[m])]
        common = table[table.model.isin(scored)].groupby("perturbation")["covered"].all()
        common = set(common[common].index)
        n_all = table["perturbation"].nunique()
        mean_l2 = table[table.model == "mean"]["l2_top1000"].mean() if "mean" in models and "l2_top1000" in ids else None
        out = {}
        for m in models:
            t = table[table.model == m].sort_values(["fold", "perturbation"])
            spec_of = {e.id: METRICS.get(e.metric).spec for e in suite.metrics}
            skipped = [h for h in hyper[m] if isinstance(h, dict) and "skipped" in h]
            if skipped:
                out[m] = [Outcome(i, e.family, spec_of[i].higher_is_better, status="skipped", reason=skipped[0]["skipped"])
                          for i, e in zip(ids, suite.metrics)]
                continue
            coverage = float(t["covered"].mean())
            units_ids = (t["fold"].astype(str) + ":" + t["perturbation"].astype(str)).to_numpy()  # a record = their mean
            res = []
            for e in suite.metrics:
                vals = t[e.id].to_numpy()
                per_fold = t.groupby("fold")[e.id].mean()
                tert = np.digitize(t["effect_size"], np.quantile(t["effect_size"], [1 / 3, 2 / 3]))
                p = {"n_perturbations": int(len(vals)), "sd_over_folds": float(per_fold.std(ddof=1)) if len(per_fold) > 1 else None,
                     "coverage": coverage, "hyperparameters": hyper[m][0] if len(set(map(str, hyper[m]))) == 1 else hyper[m],
                     "by_effect_tertile": {n: float(vals[tert == i].mean()) for i, n in enumerate(("low", "mid", "high")) if (tert == i).any()},
                     "by_subgroup": {g: float(v.mean()) for g, v in t.groupby("subgroup")[e.id]},
                     "legacy_inflatable": e.family == "legacy", "split": params.split, "dataset_info": info}
                for ref in ("mean", "random"):
                    other = "mean" if ref == "mean" else (f"{m.split('_')[0]}_random" if m.split("_")[0] in PROBES and m != "lin_pca" else None)
                    if other and other != m and other in models:
                        o = table[table.model == other].sort_values(["fold", "perturbation"])[e.id].to_numpy()
                        p[f"vs_{ref}"] = paired_stats(vals, o, n_boot=params.n_bootstrap, seed=seed)
                if len(common) < n_all:
                    sub = t[t.perturbation.isin(common)][e.id]
                    p["common_subset"] = {"n": int(len(sub)), "value": float(sub.mean()) if len(sub) else None}
                res.append(Outcome(e.id, e.family, spec_of[e.id].higher_is_better, float(vals.mean()), params=p,
                                   units=Units("perturbation", units_ids, vals)))
            if mean_l2:
                ratio = float(t["l2_top1000"].mean() / mean_l2)
                res.append(Outcome("l2_top1000_ratio_vs_mean", "headline", False, ratio,
                                   params={"definition": "mean_p L2_p(model) / mean_p L2_p(mean)"}))
            out[m] = res
        return out


def _metric_of(suite, metric_id: str) -> str:
    return next(e.metric for e in suite.metrics if e.id == metric_id)


def read_gene_embeddings(path: Path, *, name: str, targets: list[str]) -> dict[str, np.ndarray]:
    """Gene -> vector from ``.npz`` (arrays ``genes``, ``embeddings``) or ``.tsv`` (gene, then d columns)."""
    import pandas as pd

    if not path.is_file():
        raise DataError(f"gene embedding {name!r}: file {path} does not exist. Fix: check params.embeddings.{name}.")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            if not {"genes", "embeddings"} <= set(z.files):
                raise DataError(f"gene embedding {name!r}: {path} needs arrays 'genes' and 'embeddings' (has {z.files}).")
            genes, mat = z["genes"].astype(str), z["embeddings"].astype(np.float64)
    else:
        df = pd.read_csv(path, sep="\t", header=None, index_col=0)
        genes, mat = df.index.astype(str).to_numpy(), df.to_numpy(np.float64)
    if len(genes) != len(mat):
        raise DataError(f"gene embedding {name!r}: {len(genes)} gene ids but {len(mat)} rows in {path}.")
    bad = ~np.isfinite(mat).all(1)
    if bad.any():
        raise DataError(f"gene embedding {name!r}: {int(bad.sum())} rows of {path} hold NaN/inf (e.g. {list(genes[bad][:5])}). "
                        f"Fix: drop those genes from the file (they then fall back to the mean baseline).")
    vec = dict(zip(genes, mat))
    hits = sum(t in vec for t in targets)
    if hits == 0:
        raise DataError(f"gene embedding {name!r}: none of the {len(targets)} target genes (e.g. {targets[:3]}) is among "
                        f"its gene ids (e.g. {list(genes[:3])}). Fix: key the file by the dataset's gene ids "
                        f"(symbols vs Ensembl ids?).")
    return vec
