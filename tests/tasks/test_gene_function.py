"""gene_function: GO gene sets, the probe metrics against scikit-learn, Fmax by hand, the controls'
order on the packaged default, the gene-id gate, and runs through the runner and every report format."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pytest

from scfm_bench.data.go import DEFAULT_FILE, GoRelease, derive, read_gene_sets, read_release, write_gene_sets
from scfm_bench.metrics.fmax import fmax
from scfm_bench.metrics.term_ranking import average_precision, roc_auc, term_auprc, term_auroc
from scfm_bench.tasks.gene_function import GeneFunction, GeneFunctionParams, logreg_fit


# ---- metrics: parity and a hand-worked example -----------------------------------------------------

def test_auprc_and_auroc_match_sklearn_per_term_with_ties():
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(0)
    labels = rng.random((300, 12)) < rng.uniform(0.02, 0.3, 12)
    labels[0] = True
    scores = np.round(rng.random(labels.shape) * 0.5 + labels * rng.uniform(0, 0.5, 12), 1)  # coarse: many ties (like kNN)
    ap, auc = average_precision(labels, scores), roc_auc(labels, scores)
    for j in range(labels.shape[1]):
        assert ap[j] == pytest.approx(average_precision_score(labels[:, j], scores[:, j]), abs=1e-12)
        assert auc[j] == pytest.approx(roc_auc_score(labels[:, j], scores[:, j]), abs=1e-12)
    out = term_auprc.fn(labels, scores)
    assert out["auprc"] == pytest.approx(np.mean([average_precision_score(labels[:, j], scores[:, j]) for j in range(12)]))
    assert out["prevalence"] == pytest.approx(labels.mean(0).mean())  # the chance level of AUPRC
    assert term_auroc.fn(labels, scores) == pytest.approx(np.mean([roc_auc_score(labels[:, j], scores[:, j]) for j in range(12)]))


def test_fmax_hand_worked_example():
    """Three genes, three terms. Gene a has terms {1, 2}, b {2}, c {3}. First scores (rows a, b, c):
        a: 0.9 0.6 0.1    b: 0.2 0.7 0.4    c: 0.3 0.3 0.8
    τ = 0.41..0.60: predictions a {1,2} (2/2 right), b {2} (1/1), c {3} (1/1) -> pr = 1, rc = 1: Fmax = 1.
    Second scores (a's true term 2 now scores 0.3, c's term 3 0.6):
        a: 0.9 0.3 0.1    b: 0.2 0.7 0.4    c: 0.3 0.3 0.6
    τ = 0.30: a {1,2} 2/2; b {2,3} 1/2; c {1,2,3} 1/3 -> pr = (1 + 1/2 + 1/3)/3 = 11/18, rc = (1 + 1 + 1)/3 = 1,
              F = 2·(11/18)/(11/18 + 1) = 22/29 = 0.7586
    τ = 0.31..0.40: a {1} 1/1; b {2,3} 1/2; c {3} 1/1 -> pr = 5/6, rc = (1/2 + 1 + 1)/3 = 5/6, F = 5/6 = 0.8333
    τ = 0.41..0.60: a {1}; b {2}; c {3}, all right -> pr = 1, rc = (1/2 + 1 + 1)/3 = 5/6, F = 10/11 = 0.9091
    τ = 0.61..0.70: a {1}, b {2}; c predicts nothing (left out of pr) -> pr = 1, rc = (1/2 + 1 + 0)/3 = 1/2, F = 2/3
    τ = 0.71..0.90: a {1} only -> pr = 1, rc = 1/6, F = 2/7.  Fmax = 10/11 (at τ = 0.41..0.60)."""
    truth = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1]], dtype=bool)
    perfect = np.array([[0.9, 0.6, 0.1], [0.2, 0.7, 0.4], [0.3, 0.3, 0.8]])
    assert fmax.fn(truth, perfect) == pytest.approx(1.0)
    scores = np.array([[0.9, 0.3, 0.1], [0.2, 0.7, 0.4], [0.3, 0.3, 0.6]])
    assert fmax.fn(truth, scores) == pytest.approx(10 / 11)
    assert fmax.fn(truth, scores, steps=10) == pytest.approx(10 / 11)  # τ = 0.5 is on the coarse grid too
    # a gene without any true term of the aspect is not a benchmark gene: it changes nothing
    assert fmax.fn(np.vstack([truth, [[0, 0, 0]]]), np.vstack([scores, [[0.9, 0.9, 0.9]]])) == pytest.approx(10 / 11)


def test_logreg_probe_matches_sklearn():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    X = rng.normal(size=(150, 40))  # and a wide case, solved on X's principal axes
    Y = (X[:, :3] @ rng.normal(size=(3, 4)) + rng.normal(size=(150, 4))) > 1.0
    for Xc in (X, np.hstack([X, rng.normal(size=(150, 200))])):
        W, b = logreg_fit(Xc, Y, C=0.5, tol=1e-10)
        for j in range(Y.shape[1]):
            m = LogisticRegression(C=0.5, tol=1e-10, max_iter=10_000).fit(Xc, Y[:, j])
            p = 1 / (1 + np.exp(-(Xc @ W[:, j] + b[j])))  # the probe's score
            np.testing.assert_allclose(p, m.predict_proba(Xc)[:, 1], atol=1e-5)


# ---- GO derivation -----------------------------------------------------------------------------

def _toy_release(n_genes=60):
    """root R (BP) <- isa A <- isa A1 ; A2 part_of A ; B regulates A (not propagated). Direct annotations:
    genes 0-24 in A1 (IDA), 25-44 in A2 (IMP), 45-59 in B (TAS), gene 59 also A1 by IEA (excluded)."""
    genes = [f"G{i}" for i in range(n_genes)]
    terms = pd.DataFrame({"go_id": ["R", "A", "A1", "A2", "B"], "aspect": "BP", "name": ["root", "a", "a1", "a2", "b"]})
    parents = pd.DataFrame({"go_id": ["A", "A1", "A2", "B", "B"], "parent_id": ["R", "A", "A", "A", "R"],
                            "relationship": ["isa", "isa", "part of", "regulates", "isa"]})
    ann = [(g, "A1", "IDA") for g in genes[:25]] + [(g, "A2", "IMP") for g in genes[25:45]]
    ann += [(g, "B", "TAS") for g in genes[45:]] + [(genes[59], "A1", "IEA")]
    return GoRelease(terms, parents, pd.DataFrame(ann, columns=["symbol", "go_id", "evidence"]),
                     pd.DataFrame({"symbol": genes, "ensembl_ids": [f"ENSG{i:011d}" for i in range(n_genes)],
                                   "gene_type": "protein-coding"}))


def test_derive_propagates_filters_and_prunes():
    rel = _toy_release()
    sets = derive(rel, min_genes=15, max_genes=50, prune_identity=0.9)
    # A = A1 ∪ A2 (isa + part of; B's `regulates` edge does not propagate) = 45 genes; R = 60 > 50 dropped
    assert dict(sets.terms.n_genes) == {"B": 15, "A2": 20, "A1": 25, "A": 45}
    assert "G59" not in sets.members["A1"]  # IEA excluded by default
    assert sets.params["exclude_evidence"] == ["IEA", "ND"] and sets.params["propagated_over"] == ["isa", "part of"]
    with_iea = derive(rel, exclude_evidence=["ND"], min_genes=15, max_genes=60)
    assert "G59" in with_iea.members["A1"] and "R" in with_iea.members
    # A1 holds 25/45 of A: kept at 0.9; at 0.5 A1 makes A redundant (its kept child covers >= half of it)
    assert "A" not in derive(rel, min_genes=15, max_genes=50, prune_identity=0.5).members
    assert sets.ensembl["G3"] == ("ENSG00000000003",)


def test_identical_child_prunes_parent_regardless_of_ids():
    rel = _toy_release()
    rel = GoRelease(rel.terms, pd.concat([rel.parents, pd.DataFrame({"go_id": ["Z"], "parent_id": ["A1"], "relationship": ["isa"]})]),
                    pd.concat([rel.annotations, pd.DataFrame({"symbol": [f"G{i}" for i in range(25)], "go_id": "Z", "evidence": "IDA"})]),
                    rel.genes)
    rel = GoRelease(pd.concat([rel.terms, pd.DataFrame({"go_id": ["Z"], "aspect": ["BP"], "name": ["z"]})]), rel.parents,
                    rel.annotations, rel.genes)
    sets = derive(rel, min_genes=15, max_genes=50)
    assert "Z" in sets.members and "A1" not in sets.members  # same 25 genes: the child is kept, the parent pruned


def test_obo_and_gaf_readers_and_the_current_release(tmp_path, monkeypatch):
    obo = tmp_path / "go-basic.obo"
    obo.write_text("format-version: 1.2\ndata-version: releases/2024-01-01\n\n"
                   "[Term]\nid: GO:1\nname: root\nnamespace: biological_process\n\n"
                   "[Term]\nid: GO:2\nname: child\nnamespace: biological_process\nis_a: GO:1 ! root\n\n"
                   "[Term]\nid: GO:3\nname: part\nnamespace: biological_process\nrelationship: part_of GO:2 ! child\n"
                   "relationship: regulates GO:1\n\n"
                   "[Term]\nid: GO:4\nname: gone\nnamespace: biological_process\nis_obsolete: true\n\n"
                   "[Typedef]\nid: part_of\nname: part of\n")
    rows = [["UniProtKB", f"P{i}", f"G{i}", "involved_in", "GO:3", "PMID:1", "IDA", "", "P", "", "", "protein", "taxon:9606",
             "20240101", "UniProt"] for i in range(5)]
    rows.append(["UniProtKB", "P9", "G9", "NOT|involved_in", "GO:3", "PMID:1", "IDA", "", "P", "", "", "protein", "taxon:9606",
                 "20240101", "UniProt"])
    with gzip.open(tmp_path / "goa_human.gaf.gz", "wt") as fh:
        fh.write("!gaf-version: 2.2\n" + "\n".join("\t".join(r) for r in rows) + "\n")
    rel = read_release(obo, tmp_path / "goa_human.gaf.gz")
    assert set(rel.terms.go_id) == {"GO:1", "GO:2", "GO:3"}
    assert set(map(tuple, rel.parents[["go_id", "parent_id", "relationship"]].to_numpy())) == {
        ("GO:2", "GO:1", "isa"), ("GO:3", "GO:2", "part of"), ("GO:3", "GO:1", "regulates")}
    assert "G9" not in set(rel.annotations.symbol)  # NOT-qualified
    sets = derive(rel, min_genes=5, max_genes=5, prune_identity=1.01)
    assert set(sets.members) == {"GO:1", "GO:2", "GO:3"} and "2024-01-01" in sets.params["source"]
    # params.go: current reads the catalogue entries go_basic + goa_human from the data folder (placed by
    # hand here, as on an offline node: adopted and their sha256 recorded), then derives the same way
    from scfm_bench.data.go import load_gene_sets

    monkeypatch.setenv("SCFM_BENCH_DATA_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # the packaged catalogue
    current = load_gene_sets("current", min_genes=5, max_genes=5, prune_identity=1.01)
    assert current.members == sets.members and (tmp_path / "goa_human.gaf.gz.sha256").is_file()


def test_write_read_roundtrip(tmp_path):
    sets = derive(_toy_release(), min_genes=15, max_genes=50)
    write_gene_sets(sets, tmp_path / "g.tsv.gz")
    back = read_gene_sets(tmp_path / "g.tsv.gz")
    assert back.members == sets.members and back.params == sets.params and back.ensembl == sets.ensembl
    pd.testing.assert_frame_equal(back.terms, sets.terms)


def test_packaged_default_is_small_and_recorded():
    sets = read_gene_sets()
    assert DEFAULT_FILE.stat().st_size < 1_000_000
    assert sets.terms.aspect.value_counts().to_dict() == {"BP": 200, "MF": 200, "CC": 200}
    assert sets.terms.n_genes.between(20, 500).all()
    assert sets.params["exclude_evidence"] == ["IEA", "ND"] and sets.params["licence"].startswith("CC BY 4.0")


@pytest.mark.slow
def test_packaged_default_is_reproduced_from_the_snapshot(shared_data, tmp_path):
    from scfm_bench.data.go import DEFAULT_DERIVATION, read_snapshot

    write_gene_sets(derive(read_snapshot(shared_data / "go_human_2022"), **DEFAULT_DERIVATION), tmp_path / "go.tsv.gz")
    assert (tmp_path / "go.tsv.gz").read_bytes() == DEFAULT_FILE.read_bytes()


# ---- the task ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pbmc():
    from scfm_bench.data.pbmc68k import pbmc68k_semisynthetic

    return pbmc68k_semisynthetic()


@pytest.fixture(scope="module")
def suite():
    from scfm_bench.config import load_suite, packaged_suite_dir

    return load_suite(packaged_suite_dir()).metric_suites["gene_function"]


def _embedders(*keys, **params):
    from scfm_bench.registry import ADAPTERS

    return {k: ADAPTERS.get(k)(params.get(k, {}), seed=0).gene_embeddings for k in keys}


@pytest.fixture(scope="module")
def controls(pbmc, suite):
    models = ["random", "gene_pca", "go_leak"]
    return GeneFunction().run_direct(pbmc, name="pbmc", entry=None, models=models, params=GeneFunctionParams(), seed=0,
                                     suite=suite, embedders=_embedders(*models))


def test_leak_beats_gene_pca_beats_random_on_every_aspect(controls):
    v = {m: {o.id: o.value for o in outs} for m, outs in controls.outcomes.items()}
    for aspect in ("bp", "mf", "cc"):
        for metric in (f"auprc_{aspect}", f"retrieval_enrichment_{aspect}"):
            assert v["go_leak"][metric] > v["gene_pca"][metric] > v["random"][metric], metric
        assert v["go_leak"][f"auprc_{aspect}"] > 0.5  # near the top, far above chance
        # random sits at chance: its AUPRC near the mean prevalence, AUROC near 0.5
        assert abs(v["random"][f"auroc_{aspect}"] - 0.5) < 0.1
        assert v["random"][f"auprc_{aspect}"] < 2 * v["random"][f"auprc_chance_{aspect}"]
    assert v["go_leak"]["auprc"] == pytest.approx(np.mean([v["go_leak"][f"auprc_{a}"] for a in ("bp", "mf", "cc")]))


def test_folds_are_gene_disjoint_and_the_table_is_per_term(controls, pbmc):
    info, table = controls.info, controls.table
    assert info["genes_in_scope"] > 400 and all(n >= 2 for n in info["terms"].values())
    assert set(table.probe) == {"logreg", "knn"} and (table.n_genes >= 10).all()
    assert len(table) == 3 * 2 * sum(info["terms"].values())
    rec = next(o for o in controls.outcomes["gene_pca"] if o.id == "auprc_bp")
    assert rec.params["gene_coverage"]["fraction"] > 0.99 and rec.params["go"]["exclude_evidence"] == ["IEA", "ND"]


def test_gene_disjoint_folds(monkeypatch, pbmc, suite):
    """Every probe fit sees no test gene: the training rows and the scored rows never overlap."""
    import scfm_bench.tasks.gene_function as gf

    seen = []
    real = gf.logreg_fit
    monkeypatch.setattr(gf, "logreg_fit", lambda X, Y, **k: seen.append(len(X)) or real(X, Y, **k))
    params = GeneFunctionParams(knn_probe=False, aspects=["CC"])
    data = GeneFunction.load(pbmc, name="pbmc", entry=None, params=params)
    GeneFunction().run_direct(pbmc, name="pbmc", entry=None, models=["random"], params=params, seed=0, suite=suite,
                              embedders=_embedders("random"), prepared=data)
    n = len(data.genes)
    assert len(seen) == 5 and sum(n - s for s in seen) == n  # each gene is held out exactly once


def test_gene_gate_and_ensembl_fallback(pbmc, suite):
    params = GeneFunctionParams(knn_probe=False)
    data = GeneFunction.load(pbmc, name="pbmc", entry=None, params=params)
    rng = np.random.default_rng(0)
    table = {e[0]: rng.normal(size=8) for e in data.ensembl if e}
    by_ensembl = lambda genes: np.array([table.get(g, np.full(8, np.nan)) for g in genes])  # noqa: E731
    known = set(data.genes[:20])
    few = lambda genes: np.array([rng.normal(size=8) if g in known else np.full(8, np.nan) for g in genes])  # noqa: E731
    res = GeneFunction().run_direct(pbmc, name="pbmc", entry=None, models=["ens", "few"], params=params, seed=0, suite=suite,
                                    embedders={"ens": by_ensembl, "few": few}, prepared=data)
    ens = next(o for o in res.outcomes["ens"] if o.id == "auprc")
    assert ens.status == "ok" and ens.params["gene_coverage"]["by_ensembl"] == len(table)
    (bad,) = res.outcomes["few"]
    assert bad.status == "failed" and "knows 20 of the" in bad.reason and "min_gene_coverage" in bad.reason
    assert res.info["gene_coverage"]["few"]["covered"] == 20


def test_ensembl_keyed_dataset_and_gene_pca(pbmc, suite):
    """Ensembl var_names (versioned, no symbol column) map to the same genes; gene_pca is reached by Ensembl id."""
    sets = read_gene_sets()
    params = GeneFunctionParams(knn_probe=False, aspects=["CC"])
    ad = pbmc[:, [g for g in pbmc.var_names if sets.ensembl.get(g)]].copy()
    by_symbol = GeneFunction.load(ad, name="sym", entry=None, params=params)
    ad.var_names = [sets.ensembl[g][0] + ".7" for g in ad.var_names]
    data = GeneFunction.load(ad, name="ens", entry=None, params=params)
    assert data.genes == by_symbol.genes and data.terms == by_symbol.terms
    res = GeneFunction().run_direct(ad, name="ens", entry=None, models=["gene_pca"], params=params, seed=0, suite=suite,
                                    embedders=_embedders("gene_pca"), prepared=data)
    cov = res.info["gene_coverage"]["gene_pca"]
    assert cov["by_symbol"] == 0 and cov["by_ensembl"] == cov["covered"] >= len(data.genes) - 1  # NSUN6: never detected


def test_dataset_without_human_genes_is_a_clear_error():
    from scfm_bench.data.synthetic import synthetic
    from scfm_bench.exceptions import DataError

    with pytest.raises(DataError, match="'toy'.*GO gene sets"):
        GeneFunction.load(synthetic(n_cells=50, n_genes=100, seed=0), name="toy", entry=None, params=GeneFunctionParams())


def test_default_derivation_params_cannot_be_changed_silently(pbmc):
    from scfm_bench.exceptions import ConfigError

    with pytest.raises(ConfigError, match="params.go"):
        GeneFunction.load(pbmc, name="pbmc", entry=None, params=GeneFunctionParams(exclude_evidence=["ND"]))


# ---- through the runner and the reports ------------------------------------------------------------

@pytest.mark.slow
def test_default_run_and_every_report_format(tmp_path):
    """`scfm-bench run --task gene_function` as shipped: baselines scored, scFMs skipped naming their files;
    every report format carries the task."""
    import os
    import subprocess
    import sys

    def cli(*args, cwd):
        return subprocess.run([sys.executable, "-m", "scfm_bench", *args], capture_output=True, text=True, cwd=cwd,
                              env=dict(os.environ), timeout=600)

    r = cli("run", "--task", "gene_function", "--output-dir", str(tmp_path / "out"), "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    recs = [json.loads(line) for p in (tmp_path / "out").glob("runs/*/records/*.jsonl") for line in p.read_text().splitlines()]
    ok = {r["model"] for r in recs if r["status"] == "ok"}
    skipped = {r["model"]: r["reason"] for r in recs if r["status"] == "skipped"}
    assert ok == {"random", "gene_pca", "go_leak"}
    assert set(skipped) == {"scgpt", "geneformer", "uce", "scfoundation"} and "best_model.pt" in skipped["scgpt"]
    for fmt in ("term", "md", "csv", "json", "html"):
        out = tmp_path / f"report.{fmt}"
        r = cli("report", str(tmp_path / "out"), "--format", fmt, *(["--out", str(out)] if fmt == "html" else []), cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        text = out.read_text() if fmt == "html" else r.stdout
        assert "gene_function" in text and "go_leak" in text and "auprc" in text, fmt


@pytest.mark.slow
def test_tiny_scgpt_checkpoint_through_the_runner(tmp_path, pbmc):
    """A tiny scGPT whose vocabulary holds 54 real genes of the dataset: the gate fails it at the default
    min_gene_coverage, and it is scored once the gate is lowered; its coverage is recorded."""
    import sys
    from pathlib import Path

    import yaml

    from scfm_bench.config import packaged_suite_dir
    from scfm_bench.runner import RunOptions, build_plan, execute
    from scfm_bench.settings import Settings

    sys.path.insert(0, str(Path(__file__).parents[1] / "adapters"))  # the adapters' tiny-checkpoint builders
    from tiny_ckpt import SYMBOLS, build_scgpt

    ckpt = build_scgpt(tmp_path / "scgpt")
    data = GeneFunction.load(pbmc, name="pbmc", entry=None, params=GeneFunctionParams())
    vocab = json.loads((ckpt / "vocab.json").read_text())
    real = dict(zip(SYMBOLS, data.genes[::7]))
    (ckpt / "vocab.json").write_text(json.dumps({real.get(k, k): v for k, v in vocab.items()}))
    root = tmp_path / "suite"
    (root / "tasks").mkdir(parents=True)
    for name in ("metrics", "datasets.yaml"):
        (root / name).symlink_to(packaged_suite_dir() / name)
    results = {}
    for gate in (0.5, 0.05):
        (root / "tasks" / "gene_function.yaml").write_text(yaml.safe_dump(
            {"task": "gene_function", "datasets": ["pbmc68k_semisynthetic"], "models": ["random", "scgpt"], "seeds": [0],
             "params": {"min_gene_coverage": gate, "knn_probe": False}, "model_params": {"scgpt": {"checkpoint": str(ckpt)}}}))
        s = execute(build_plan(RunOptions(suite_dir=root)), Settings(), output_dir=tmp_path / f"out{gate}")
        results[gate] = {(r.model, r.metric): r for r in s.records}
    failed = results[0.5][("scgpt", "*")]
    assert failed.status == "failed" and "min_gene_coverage" in failed.reason
    scored = results[0.05][("scgpt", "auprc")]
    assert scored.status == "ok" and scored.params["gene_coverage"]["covered"] == len(real)


@pytest.mark.slow
def test_real_data_kang(shared_data, tmp_path):
    """kang_ctrl_8donors_12k (1,287 genes, 12k cells): gene_pca from its expression; the controls keep their order."""
    from scfm_bench.runner import RunOptions, build_plan, execute
    from scfm_bench.settings import Settings

    opts = RunOptions(tasks=["gene_function"], datasets=[str(shared_data / "kang_ctrl_8donors_12k.h5ad")],
                      models=["random", "gene_pca", "go_leak"])
    s = execute(build_plan(opts), Settings(), output_dir=tmp_path)
    assert s.exit_code == 0
    v = {(r.model, r.metric): r.value for r in s.records}
    for aspect in ("bp", "mf", "cc"):
        assert v[("go_leak", f"auprc_{aspect}")] > v[("gene_pca", f"auprc_{aspect}")] > v[("random", f"auprc_{aspect}")]
    assert next(r for r in s.records if r.model == "gene_pca").params["genes_in_scope"] > 1000
