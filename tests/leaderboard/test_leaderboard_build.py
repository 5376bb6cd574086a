from __future__ import annotations

import math

import pandas as pd
import pytest

from scfm_bench.leaderboard import build_leaderboard


def _row(lb, model, key=("integration", "pbmc")):
    frame = lb.tables[key].frame
    return frame.loc[frame["model"] == model].iloc[0]


def test_mean_sd_n_over_seeds(rec):
    records = [
        rec("pca", "ari", 0.5, seed=0),
        rec("pca", "ari", 0.6, seed=1),
        rec("pca", "ari", 0.9, seed=2),
        rec("hvg", "ari", 0.4, seed=0),
        rec("hvg", "ari", 0.8, seed=1),
    ]
    lb = build_leaderboard(records)
    pca, hvg = _row(lb, "pca"), _row(lb, "hvg")
    assert pca["ari"] == pytest.approx(2.0 / 3)
    assert pca["ari_sd"] == pytest.approx(0.2081666)  # sample sd (ddof=1) of 0.5, 0.6, 0.9
    assert pca["ari_n"] == 3
    assert hvg["ari"] == pytest.approx(0.6)
    assert hvg["ari_sd"] == pytest.approx(0.2828427)
    assert hvg["ari_n"] == 2
    assert (pca["seeds"], hvg["seeds"]) == (3, 2)
    cell = lb.tables[("integration", "pbmc")].cells[("pca", "ari")]
    assert (cell.n, cell.status, cell.reason) == (3, "ok", None)


def test_single_seed_has_no_sd_or_n_columns(rec):
    lb = build_leaderboard([rec("pca", "ari", 0.5), rec("hvg", "ari", 0.4)])
    frame = lb.tables[("integration", "pbmc")].frame
    assert list(frame.columns) == ["rank", "model", "ari", "embed_s", "cells_per_s", "peak_ram_mb", "peak_gpu_mb", "seeds", "status", "reason"]
    long = lb.to_frame()
    assert math.isnan(long.loc[long["model"] == "pca", "sd"].iloc[0])
    assert long.loc[long["model"] == "pca", "n"].iloc[0] == 1


def test_rank_by_primary_higher_is_better(rec):
    p = {"primary": "ari"}
    lb = build_leaderboard(
        [
            rec("a", "ari", 0.3, params=p),
            rec("b", "ari", 0.9, params=p),
            rec("c", "ari", 0.6, params=p),
            rec("a", "nmi", 0.99, params=p),
            rec("b", "nmi", 0.1, params=p),
            rec("c", "nmi", 0.1, params=p),
        ]
    )
    table = lb.tables[("integration", "pbmc")]
    assert table.ranked_by == "ari"
    assert list(table.frame["model"]) == ["b", "c", "a"]
    assert list(table.frame["rank"]) == [1, 2, 3]


def test_rank_by_primary_lower_is_better_with_ties(rec):
    p = {"primary": "rmse"}
    lb = build_leaderboard(
        [
            rec("a", "rmse", 0.2, higher_is_better=False, params=p),
            rec("b", "rmse", 0.5, higher_is_better=False, params=p),
            rec("c", "rmse", 0.2, higher_is_better=False, params=p),
            rec("d", "rmse", 0.1, higher_is_better=False, params=p),
        ]
    )
    frame = lb.tables[("integration", "pbmc")].frame
    assert list(frame["model"]) == ["d", "a", "c", "b"]
    assert list(frame["rank"]) == [1, 2, 2, 4]


def test_rank_falls_back_to_last_aggregate(rec):
    lb = build_leaderboard(
        [
            rec("a", "ari", 0.9),
            rec("a", "avg_bio", 0.9, family="aggregate"),
            rec("a", "total", 0.2, family="aggregate"),
            rec("b", "ari", 0.1),
            rec("b", "avg_bio", 0.1, family="aggregate"),
            rec("b", "total", 0.7, family="aggregate"),
        ]
    )
    table = lb.tables[("integration", "pbmc")]
    assert table.ranked_by == "total"
    assert (table.metrics, table.aggregates) == (("ari",), ("avg_bio", "total"))
    assert list(table.frame["model"]) == ["b", "a"]


def test_rank_falls_back_to_signed_mean_of_metrics(rec):
    # a: (0.8 - 0.6) / 2 = 0.1; b: (0.6 - 0.2) / 2 = 0.2; c lacks a metric and gets no score
    lb = build_leaderboard(
        [
            rec("a", "ari", 0.8),
            rec("a", "err", 0.6, higher_is_better=False),
            rec("b", "ari", 0.6),
            rec("b", "err", 0.2, higher_is_better=False),
            rec("c", "ari", 1.0),
        ]
    )
    table = lb.tables[("integration", "pbmc")]
    assert table.ranked_by is None
    assert list(table.frame["model"]) == ["b", "a", "c"]
    assert table.frame["rank"].iloc[:2].tolist() == [1, 2]
    assert pd.isna(table.frame["rank"].iloc[2])


def test_primary_without_records_leaves_table_unranked(rec, caplog):
    p = {"primary": "total"}
    lb = build_leaderboard([rec("a", "ari", 0.8, params=p), rec("b", "ari", 0.9, params=p)])
    frame = lb.tables[("integration", "pbmc")].frame
    assert frame["rank"].isna().all()
    assert "primary score 'total' has no records" in caplog.text


def test_latest_record_wins_whatever_the_input_order(rec):
    newer = rec("a", "ari", 0.9, created_at="2025-02-01T00:00:00+00:00")
    older = rec("a", "ari", 0.1, created_at="2025-01-01T00:00:00+00:00")
    assert _row(build_leaderboard([newer, older]), "a")["ari"] == pytest.approx(0.9)
    failed = rec("a", "ari", status="failed", reason="OOM", created_at="2025-03-01T00:00:00+00:00")
    row = _row(build_leaderboard([older, failed, newer]), "a")
    assert math.isnan(row["ari"])
    assert (row["status"], row["reason"]) == ("failed", "OOM")


def test_failed_and_skipped_are_kept_with_reasons_and_never_ranked(rec):
    p = {"primary": "total"}
    records = [
        rec("good", "ari", 0.5, params=p),
        rec("good", "total", 0.5, family="aggregate", params=p),
        # the whole cell failed before any metric ran
        rec("nan_model", "*", status="failed", reason="embedding is NaN", family=None, params=p),
        rec("gpu_model", "ari", status="skipped", reason="needs a GPU", params=p),
        rec("gpu_model", "total", status="skipped", reason="needs a GPU", family="aggregate", params=p),
        # ok in seed 0, failed whole in seed 1: its better-looking mean covers half the seeds, so it is
        # incomplete and ranked after every complete model, with the failed seed in the reason
        rec("flaky", "ari", 0.7, params=p),
        rec("flaky", "total", 0.9, family="aggregate", params=p),
        rec("flaky", "*", seed=1, status="failed", reason="CUDA OOM", family=None, params=p),
        rec("good", "ari", 0.5, seed=1, params=p),
        rec("good", "total", 0.5, family="aggregate", seed=1, params=p),
    ]
    lb = build_leaderboard(records)
    frame = lb.tables[("integration", "pbmc")].frame
    assert list(frame["model"]) == ["good", "flaky", "gpu_model", "nan_model"]
    assert list(frame["status"]) == ["ok", "incomplete", "skipped", "failed"]
    assert list(frame["reason"]) == [None, "incomplete (seed 1: CUDA OOM)", "needs a GPU", "embedding is NaN"]
    assert frame["rank"].iloc[:2].tolist() == [1, 2]
    assert frame["rank"].iloc[2:].isna().all()
    assert frame.loc[frame["model"] == "flaky", "ari_n"].iloc[0] == 1

    long = lb.to_frame().set_index(["model", "metric"])
    assert list(lb.to_frame()["metric"].unique()) == ["ari", "total"]
    for model, status, reason in [("nan_model", "failed", "embedding is NaN"), ("gpu_model", "skipped", "needs a GPU")]:
        for metric in ("ari", "total"):
            row = long.loc[(model, metric)]
            assert (row["status"], row["reason"], row["n"]) == (status, reason, 0)
            assert math.isnan(row["mean"]) and pd.isna(row["rank"])
    assert long.loc[("flaky", "ari"), "status"] == "partial"
    assert long.loc[("flaky", "ari"), "model_status"] == "incomplete"


def test_model_missing_a_seed_is_incomplete_and_ranked_after_complete_ones(rec):
    p = {"primary": "ari"}
    records = [rec("a", "ari", 0.5, seed=s, params=p) for s in (0, 1, 2)]
    records += [rec("b", "ari", 0.9, seed=s, params=p) for s in (0, 1)]  # seed 2 never ran
    records += [rec("c", "ari", 0.95, seed=s, params=p) for s in (0, 2)]
    records += [rec("c", "ari", status="failed", reason="OOM", seed=1, params=p)]
    frame = build_leaderboard(records).tables[("integration", "pbmc")].frame
    assert list(frame["model"]) == ["a", "c", "b"]
    assert list(frame["rank"]) == [1, 2, 3]
    assert list(frame["status"]) == ["ok", "incomplete", "incomplete"]
    assert list(frame["reason"]) == [None, "incomplete (seed 1: OOM)", "incomplete (seed 2: no records)"]


def test_distinct_reasons_are_joined(rec):
    lb = build_leaderboard(
        [
            rec("a", "ari", status="failed", reason="OOM", seed=0),
            rec("a", "ari", status="failed", reason="OOM", seed=1),
            rec("a", "nmi", status="skipped", reason="one batch", seed=0),
        ]
    )
    assert _row(lb, "a")["reason"] == "OOM; one batch"
    assert _row(lb, "a")["status"] == "failed"


def test_group_where_every_cell_failed_whole_keeps_its_rows(rec):
    lb = build_leaderboard([rec("a", "*", status="failed", reason="bad input", family=None)])
    long = lb.to_frame()
    assert long[["model", "metric", "status", "reason", "n"]].values.tolist() == [["a", "*", "failed", "bad input", 0]]


def test_columns_in_order_of_first_appearance_and_groups_separate(rec):
    lb = build_leaderboard(
        [
            rec("a", "nmi", 0.1),
            rec("a", "asw", 0.2, submetric="label"),
            rec("b", "ari", 0.3),
            rec("a", "nmi", 0.5, dataset="lung"),
        ]
    )
    assert list(lb.tables) == [("integration", "lung"), ("integration", "pbmc")]
    assert lb.tables[("integration", "pbmc")].metrics == ("nmi", "asw/label", "ari")
    assert lb.tables[("integration", "lung")].metrics == ("nmi",)
    assert _row(lb, "a", ("integration", "lung"))["nmi"] == pytest.approx(0.5)


def test_efficiency_mean_over_seeds(rec):
    lb = build_leaderboard(
        [
            rec("a", "ari", 0.1, seed=0, embed_s=10.0, peak_ram_mb=1000.0, params={"n_cells": 500}),
            rec("a", "nmi", 0.1, seed=0, embed_s=10.0, peak_ram_mb=1200.0, peak_gpu_mb=300.0),
            rec("a", "ari", 0.1, seed=1, embed_s=20.0, peak_ram_mb=2000.0, params={"n_cells": 500}),
            rec("a", "ari", 0.1, seed=2, embed_s=15.0, peak_ram_mb=1600.0, embedding_cached=True),
            rec("b", "ari", 0.1),
        ]
    )
    a, b = _row(lb, "a"), _row(lb, "b")
    assert a["embed_s"] == pytest.approx(15.0)
    assert a["peak_ram_mb"] == pytest.approx(1600.0)  # per seed the peak: 1200, 2000 and 1600
    assert a["cells_per_s"] == pytest.approx((50 + 25) / 2)  # seeds with a cell count: 500/10 and 500/20
    assert a["peak_gpu_mb"] == pytest.approx(300.0)
    assert all(math.isnan(b[f]) for f in ("embed_s", "cells_per_s", "peak_ram_mb", "peak_gpu_mb"))


def test_min_max_scaled_flag_comes_from_params(rec):
    lb = build_leaderboard(
        [rec("a", "ari", 0.1, params={"min_max_scaled": False}), rec("a", "ari", 0.1, dataset="lung")]
    )
    assert lb.tables[("integration", "pbmc")].min_max_scaled is False
    assert lb.tables[("integration", "lung")].min_max_scaled is None


def test_empty_records_give_empty_leaderboard():
    lb = build_leaderboard([])
    assert lb.tables == {}
    assert lb.to_frame().empty
