from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from scfm_bench.leaderboard import build_report
from scfm_bench.leaderboard.report import _key_seed
from scfm_bench.bootstrap import mean_ci, paired_mean_diff
from scfm_bench.records import RunManifest

KINDS = {"pca": "baseline", "hvg": "baseline", "scgpt": "scfm", "random": "control", "shuffled": "control",
         "label_onehot": "ceiling"}
P = {"primary": "total", "min_max_scaled": False}


def _cell(rec, model, seed, ari, total, **kw):
    return [rec(model, "ari", ari, seed=seed, params=P, **kw), rec(model, "nmi", ari / 2, seed=seed, params=P, **kw),
            rec(model, "total", total, seed=seed, family="aggregate", params=P, **kw)]


def test_mean_ci_is_scipys_percentile_bootstrap_seeded_and_order_free():
    x = np.array([0.1, 0.4, 0.35, 0.8, 0.55, 0.6, 0.2])
    lo, hi = mean_ci([x], n_boot=5000)[0]
    ref = stats.bootstrap((x,), np.mean, n_resamples=5000, method="percentile",
                          rng=np.random.default_rng([0, len(x)])).confidence_interval
    assert (lo, hi) == pytest.approx((ref.low, ref.high), abs=1e-12)
    # seeded, order-independent, and no interval below three units
    again = mean_ci([np.array([1.0, 2.0]), x, x[::-1]], n_boot=5000)
    assert np.isnan(again[0]).all() and (again[1] == [lo, hi]).all()


def test_paired_mean_diff_is_scipys_paired_bootstrap_of_the_same_statistic():
    rng = np.random.default_rng(3)
    a = rng.random(40)
    b = a - 0.05 + rng.normal(0, 0.1, 40)
    est, lo, hi = paired_mean_diff(a, b, n_boot=3000, seed=7)
    ref = stats.bootstrap((a, b), lambda x, y, axis=-1: x.mean(axis) - y.mean(axis), paired=True, n_resamples=3000,
                          method="percentile", rng=np.random.default_rng([7, 40])).confidence_interval
    assert est == pytest.approx(a.mean() - b.mean()) and (lo, hi) == pytest.approx((ref.low, ref.high), abs=1e-12)
    assert lo <= est <= hi
    assert np.isnan(paired_mean_diff(a[:2], b[:2])[1])  # two units: no interval


def test_control_scaling_uses_negative_and_positive_controls(rec):
    records = (_cell(rec, "random", 0, 0.25, 0.25) + _cell(rec, "shuffled", 0, 0.75, 0.25)
               + _cell(rec, "label_onehot", 0, 1.5, 1.0) + _cell(rec, "pca", 0, 1.0, 0.625))
    s = build_report(records, kinds=KINDS).scores.set_index(["model", "column"])
    # ari: negatives mean 0.5, positive 1.5 -> pca (1.0 - 0.5) / 1.0
    assert s.loc[("pca", "ari"), "control_scaled"] == pytest.approx(0.5)
    assert s.loc[("pca", "total"), "control_scaled"] == pytest.approx(0.5)  # (0.625 - 0.25) / 0.75
    assert s.loc[("pca", "ari"), "min_max"] == pytest.approx(0.75 / 1.25)  # range 0.25 .. 1.5
    assert s.loc[("label_onehot", "ari"), "control_scaled"] == 1.0


def test_control_scaling_needs_both_kinds(rec):
    s = build_report(_cell(rec, "random", 0, 0.2, 0.2) + _cell(rec, "pca", 0, 0.5, 0.5), kinds=KINDS).scores
    assert s["control_scaled"].isna().all()


def test_paired_comparison_over_seeds_without_units(rec):
    records = []
    for seed, (p, g, h) in enumerate([(0.5, 0.6, 0.4), (0.52, 0.63, 0.45), (0.49, 0.61, 0.5), (0.51, 0.6, 0.52)]):
        records += _cell(rec, "pca", seed, p, p) + _cell(rec, "scgpt", seed, g, g) + _cell(rec, "hvg", seed, h, h)
    report = build_report(records, kinds=KINDS)
    comps = {c.model: c for c in report.comparisons}
    assert set(comps) == {"scgpt", "hvg"} and all(c.baseline == "pca" and c.unit == "seeds" for c in comps.values())
    pca, scgpt = np.array([0.5, 0.52, 0.49, 0.51]), np.array([0.6, 0.63, 0.61, 0.6])
    assert comps["scgpt"].diff == pytest.approx(0.105) and comps["scgpt"].n == 4  # Δ 0.1, 0.11, 0.12, 0.09
    assert (comps["scgpt"].diff, comps["scgpt"].ci_low, comps["scgpt"].ci_high) == pytest.approx(
        paired_mean_diff(scgpt, pca, seed=_key_seed(0, "integration", "pbmc", "scgpt", "total")))
    assert comps["scgpt"].marker == "▲" and comps["scgpt"].significant
    assert comps["hvg"].marker == "≈"  # -0.1 .. +0.03: the interval covers 0


def test_single_seed_without_units_gives_no_interval(rec):
    # the old report resampled these heterogeneous per-metric differences; one seed of one number is no sample
    records = [rec("pca", "err", 0.5, higher_is_better=False, params=P), rec("pca", "ari", 0.5, params=P),
               rec("pca", "total", 0.5, family="aggregate", params=P),
               rec("scgpt", "err", 0.25, higher_is_better=False, params=P), rec("scgpt", "ari", 0.75, params=P),
               rec("scgpt", "total", 0.75, family="aggregate", params=P)]
    (c,) = build_report(records, kinds=KINDS).comparisons
    assert (c.unit, c.n, c.column, c.diff, c.marker) == ("seeds", 1, "total", 0.25, "?")
    assert math.isnan(c.ci_low) and math.isnan(c.ci_high)


def _units(model, seed, values, metric="asw", run_id="run"):
    return pd.DataFrame({"task": "integration", "dataset": "pbmc", "model": model, "seed": seed, "metric": metric,
                         "unit": "cell", "id": [str(i) for i in range(len(values))], "value": values, "run_id": run_id})


def test_paired_comparison_resamples_stored_units_and_contains_its_estimate(rec):
    rng = np.random.default_rng(0)
    base_cells = rng.random(200)
    model_cells = np.clip(base_cells + rng.normal(0.03, 0.1, 200), 0, 1)
    records = _cell(rec, "pca", 0, 0.5, 0.5) + _cell(rec, "scgpt", 0, 0.6, 0.6)
    records += [rec("pca", "asw", base_cells.mean(), params=P), rec("scgpt", "asw", model_cells.mean(), params=P)]
    units = pd.concat([_units("pca", 0, base_cells), _units("scgpt", 0, model_cells)])
    comps = {c.column: c for c in build_report(records, units=units, kinds=KINDS).comparisons}
    assert set(comps) == {"total", "asw"}
    assert comps["total"].marker == "?"  # an aggregate has no units, one seed: no interval
    c = comps["asw"]
    assert (c.unit, c.n) == ("cells", 200) and c.diff == pytest.approx(model_cells.mean() - base_cells.mean())
    assert c.ci_low <= c.diff <= c.ci_high
    assert (c.diff, c.ci_low, c.ci_high) == pytest.approx(
        paired_mean_diff(model_cells, base_cells, seed=_key_seed(0, "integration", "pbmc", "scgpt", "asw")))
    # units written by another run than the record shown are not paired with it
    stale = pd.concat([_units("pca", 0, base_cells), _units("scgpt", 0, model_cells, run_id="older")])
    c = {c.column: c for c in build_report(records, units=stale, kinds=KINDS).comparisons}["asw"]
    assert (c.unit, c.n, c.marker) == ("seeds", 1, "?")


def test_leakage_hash_mix_and_provenance(rec):
    ds = {"pbmc": {"in_pretraining": ["scgpt"]}}
    suite = {"datasets": ds, "metric_suites": {"integration": {
        "name": "scib_classic", "version": 3, "min_max_scale": False,
        "aggregates": [{"id": "bio", "family": "bio"}, {"id": "total", "weights": {"bio": 0.6, "batch": 0.4}}]}}}
    m = RunManifest(run_id="r1", package_version="0.1.0", git_commit="abcdef1234567890", suite=suite)
    records = [rec("scgpt", "ari", 0.5, params={"ontology_version": "2024-01-01"}),
               rec("pca", "ari", 0.4).model_copy(update={"dataset_sha256": "a" * 64}),
               rec("scgpt", "nmi", 0.4).model_copy(update={"dataset_sha256": "b" * 64})]
    report = build_report(records, [m], kinds=KINDS)
    assert report.leakage == {("scgpt", "pbmc")}
    assert report.scores.set_index("model").loc["scgpt", "in_pretraining"].all()
    assert len(report.warnings) == 1 and "'pbmc'" in report.warnings[0] and "aaaaaaaaaaaa" in report.warnings[0]
    assert report.weights[("integration", "pbmc")] == (
        "Aggregates (scib_classic v3, over raw values): bio = mean of the bio metrics; total = 0.6 × bio + 0.4 × batch.")
    p = report.provenance
    assert (p.package_versions, p.git_commits, p.cl_versions, p.suites) == (
        ("0.1.0",), ("abcdef1234567890",), ("2024-01-01",), {"scib_classic": 3})
    assert p.run_ids == ("r1", "run")


def test_failed_cells_keep_reasons_and_no_numbers(rec):
    records = _cell(rec, "pca", 0, 0.5, 0.5) + [rec("scgpt", "*", status="failed", reason="NaN in embedding", family=None)]
    report = build_report(records, kinds=KINDS)
    row = report.scores.set_index(["model", "column"]).loc[("scgpt", "ari")]
    assert row["status"] == "failed" and row["reason"] == "NaN in embedding" and math.isnan(row["mean"])
    assert report.comparisons == ()


def test_figures_written_as_png_and_svg(rec, tmp_path):
    from scfm_bench.leaderboard.figures import write_figures

    records = _cell(rec, "random", 0, 0.25, 0.25) + _cell(rec, "pca", 0, 1.0, 0.625)
    written = write_figures(build_report(records, kinds=KINDS), tmp_path / "figs")
    names = {p.name for p in written}
    assert {"rank_heatmap.png", "rank_heatmap.svg", "results_integration__pbmc.png", "results_integration__pbmc.svg"} <= names
    assert (tmp_path / "figs" / "rank_heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (tmp_path / "figs" / "rank_heatmap.svg").read_bytes()[:500]


def test_unseen_only_ranks_on_datasets_outside_each_models_pretraining(rec):
    """scGPT wins on pbmc, which its corpus holds, and loses on lung: the unseen-only view ranks it on
    lung only, marks its pbmc cell ⊘ and says why in every format."""
    from scfm_bench.leaderboard import to_markdown
    from scfm_bench.leaderboard.views import EXCLUDED, sections

    suite = {"datasets": {"pbmc": {"in_pretraining": ["scgpt"]}, "lung": {}}}
    m = RunManifest(run_id="r1", package_version="0.1.0", suite=suite)
    records = [r for d, s_pca, s_gpt in (("pbmc", 0.5, 0.9), ("lung", 0.6, 0.4))
               for r in _cell(rec, "pca", 0, s_pca, s_pca, dataset=d) + _cell(rec, "scgpt", 0, s_gpt, s_gpt, dataset=d)]
    full = build_report(records, [m], kinds=KINDS)
    unseen = build_report(records, [m], kinds=KINDS, unseen_only=True)
    assert full.excluded == frozenset() and unseen.excluded == {("scgpt", "pbmc")}
    assert set(full.tables[("integration", "pbmc")].frame["model"]) == {"pca", "scgpt"}
    assert list(unseen.tables[("integration", "pbmc")].frame["model"]) == ["pca"]
    ranks = {name: f.set_index("model") for name, f in (("full", full.overall["embedding"]), ("unseen", unseen.overall["embedding"]))}
    assert ranks["full"].loc["scgpt", "mean_rank"] == 1.5 and ranks["unseen"].loc["scgpt", "mean_rank"] == 2.0
    assert ranks["unseen"].loc["scgpt", "ranked_in"] == 1
    overall = sections(unseen)[0].views[0]
    row = next(r for r in overall.rows if r[0] == "scgpt")
    assert row[overall.header.index("integration · pbmc")] == EXCLUDED
    assert "unseen-only view: scgpt left out" in to_markdown(unseen) and "unseen-only" not in to_markdown(full)
