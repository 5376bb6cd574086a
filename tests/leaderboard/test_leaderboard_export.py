from __future__ import annotations

import io
import json
import re

import pandas as pd
import pytest
from rich.console import Console

from scfm_bench.leaderboard import build_report, render_terminal, to_csv, to_json, to_markdown
from scfm_bench.leaderboard.report import SCORE_COLUMNS
from scfm_bench.bootstrap import mean_ci
from scfm_bench.leaderboard.terminal import _rich_table
from scfm_bench.leaderboard.views import dataset_section

# Binary fractions throughout, so every mean and sd is exact and outputs compare with ==.
PBMC = ("integration", "pbmc")
LUNG = ("annotation", "lung")


@pytest.fixture
def lb(rec):
    p = {"primary": "total", "min_max_scaled": False}
    agg = {"family": "aggregate", "params": p}
    records = []
    for seed, (ari, total) in enumerate([(0.25, 0.375), (0.5, 0.5), (0.75, 0.625)]):
        t = {"embed_s": float(seed + 1), "peak_ram_mb": 100.0 * (seed + 1)}
        records += [rec("pca", "ari", ari, seed=seed, params=p, **t), rec("pca", "total", total, seed=seed, **agg, **t)]
    records += [
        # 900 cells in 4.5 s: 200 cells/s
        rec("scgpt", "ari", 0.875, params={**p, "n_cells": 900}, embed_s=4.5, peak_ram_mb=1024.0, peak_gpu_mb=2048.0),
        rec("scgpt", "total", 0.75, **agg, embed_s=4.5, peak_ram_mb=1024.0, peak_gpu_mb=2048.0),
        rec("scgpt", "*", seed=1, status="failed", reason="NaN | inf in embedding", family=None, params=p),
        rec("geneformer", "ari", status="skipped", reason="needs a GPU [cuda]", params=p),
        rec("geneformer", "total", status="skipped", reason="needs a GPU [cuda]", **agg),
    ]
    lung = {"task": "annotation", "dataset": "lung", "family": "annotation"}
    records += [
        rec("knn", "error", 0.25, higher_is_better=False, **lung),
        rec("knn", "f1", 0.5, **lung),
        rec("svm", "error", 0.125, higher_is_better=False, **lung),
        rec("svm", "f1", 0.75, **lung),
    ]
    return build_report(records, kinds={})  # no baselines or controls: no comparisons, no control scaling


_LO, _HI = mean_ci([__import__("numpy").array([0.375, 0.5, 0.625])])[0]
PCA_CI = f"[{_LO:.3f}, {_HI:.3f}]"
INCOMPLETE = "incomplete (seed 1: NaN | inf in embedding; seed 2: no records)"
# scgpt's better mean covers one of the three seeds: incomplete, ranked after pca
PBMC_ROWS = [
    ["1", "pca", "0.500 ± 0.250", "0.500 ± 0.125", PCA_CI, "2.00", "—", "200", "—", "ok", "—"],
    ["2", "scgpt", "0.875", "0.750", "—", "4.50", "200", "1024", "2048", "incomplete", INCOMPLETE],
    ["—", "geneformer", "—", "—", "—", "—", "—", "—", "—", "skipped", "needs a GPU [cuda]"],
]
LUNG_ROWS = [
    ["1", "svm", "0.125", "0.750", "—", "—", "—", "—", "ok", "—"],
    ["2", "knn", "0.250", "0.500", "—", "—", "—", "—", "ok", "—"],
]


def _parse_markdown(text: str) -> dict[str, tuple[list[str], dict[str, tuple[list[str], list[list[str]]]]]]:
    """{section heading: (notes, {table title: (header, rows)})} with escaped pipes restored."""
    out = {}
    for section in text.split("\n## ")[1:]:
        heading, *lines = section.split("\n---\n")[0].splitlines()
        notes = [ln for ln in lines if ln and not ln.startswith(("|", "**"))]
        tables: dict[str, tuple[list[str], list[list[str]]]] = {}
        title = None
        for ln in lines:
            if ln.startswith("**"):
                title, tables[ln.strip("*")] = ln.strip("*"), ([], [])
            elif ln.startswith("|"):
                cells = [c.strip().replace(r"\|", "|") for c in re.split(r"(?<!\\)\|", ln)[1:-1]]
                head, rows = tables[title]
                if not head:
                    head += cells
                elif set(cells) != {"---"}:
                    rows.append(cells)
        out[heading] = (notes, tables)
    return out


def test_markdown_holds_exactly_the_expected_cells(lb):
    md = _parse_markdown(to_markdown(lb))
    assert list(md) == ["Overall", "annotation · lung", "integration · pbmc"]
    notes, tables = md["integration · pbmc"]
    assert notes[0] == "Ranked by total (higher is better). Values are raw (not min-max scaled)."
    header, rows = tables["Scores (mean ± sd over seeds)"]
    assert header == ["rank", "model", "ari ↑", "total ↑", "total 95% CI", "embed_s", "cells_per_s", "peak_ram_mb",
                      "peak_gpu_mb", "status", "reason"]
    assert rows == PBMC_ROWS
    # min-max over the models' means: ari 0.875 / 0.5, total 0.75 / 0.5
    assert tables["Min-max-scaled (0 = worst, 1 = best model here)"][1] == [
        ["pca", "0.000", "0.000"], ["scgpt", "1.000", "1.000"], ["geneformer", "—", "—"]]
    assert "Control-scaled (0 = negative controls, 1 = ceilings)" not in tables  # no controls ran
    notes, tables = md["annotation · lung"]
    assert notes[0] == "Ranked by the mean of the metrics (lower-is-better ones negated)."
    header, rows = tables["Scores (mean ± sd over seeds)"]
    assert header == ["rank", "model", "error ↓", "f1 ↑", "embed_s", "cells_per_s", "peak_ram_mb", "peak_gpu_mb",
                      "status", "reason"]
    assert rows == LUNG_ROWS
    # lower-is-better: the smaller error scales to 1
    assert tables["Min-max-scaled (0 = worst, 1 = best model here)"][1] == [
        ["svm", "1.000", "1.000"], ["knn", "0.000", "0.000"]]
    overall = md["Overall"][1]["Overall"]
    assert overall[0] == ["model", "kind", "annotation · lung", "integration · pbmc", "mean rank", "ranked in"]
    # lung is ranked by the signed mean of its metrics, which is no column: no score to show
    assert overall[1] == [["pca", "external", "—", "0.500", "1.00", "1"], ["svm", "external", "—", "—", "1.00", "1"],
                          ["knn", "external", "—", "—", "2.00", "1"], ["scgpt", "external", "—", "0.750", "2.00", "1"],
                          ["geneformer", "external", "—", "—", "—", "0"]]


def test_csv_round_trips_the_long_format(lb):
    buf = io.StringIO()
    to_csv(lb, buf)
    df = pd.read_csv(io.StringIO(buf.getvalue()), dtype=str, keep_default_na=False)
    assert list(df.columns) == list(SCORE_COLUMNS)
    df = df[["task", "dataset", "model", "column", "mean", "sd", "n", "status", "reason", "rank", "model_status"]]
    pbmc = [
        ("integration", "pbmc", *row)
        for row in [
            ("pca", "ari", "0.5", "0.25", "3", "ok", "", "1", "ok"),
            ("pca", "total", "0.5", "0.125", "3", "ok", "", "1", "ok"),
            ("scgpt", "ari", "0.875", "", "1", "partial", "NaN | inf in embedding", "2", "incomplete"),
            ("scgpt", "total", "0.75", "", "1", "partial", "NaN | inf in embedding", "2", "incomplete"),
            ("geneformer", "ari", "", "", "0", "skipped", "needs a GPU [cuda]", "", "skipped"),
            ("geneformer", "total", "", "", "0", "skipped", "needs a GPU [cuda]", "", "skipped"),
        ]
    ]
    lung = [
        ("annotation", "lung", *row)
        for row in [
            ("svm", "error", "0.125", "", "1", "ok", "", "1", "ok"),
            ("svm", "f1", "0.75", "", "1", "ok", "", "1", "ok"),
            ("knn", "error", "0.25", "", "1", "ok", "", "2", "ok"),
            ("knn", "f1", "0.5", "", "1", "ok", "", "2", "ok"),
        ]
    ]
    assert [tuple(r) for r in df.itertuples(index=False)] == lung + pbmc


def test_json_is_structured_and_exact(lb):
    data = json.loads(to_json(lb))
    extra = {}  # the report's additions, checked apart from the leaderboard's own fields
    for t in data["tables"]:
        for row in t["rows"]:
            extra[(t["dataset"], row["model"])] = (row.pop("kind"), row.pop("in_pretraining"))
            for cid, v in row["values"].items():
                extra[(t["dataset"], row["model"], cid)] = (v.pop("ci95"), v.pop("min_max"), v.pop("control_scaled"))
    assert extra[("pbmc", "pca")] == ("external", False)
    assert extra[("pbmc", "pca", "total")] == ([_LO, _HI], 0.0, None)
    assert extra[("pbmc", "scgpt", "ari")] == (None, 1.0, None)
    assert data["comparisons"] == [] and data["warnings"] == []
    assert data["provenance"]["run_ids"] == ["run"]
    assert [(t["task"], t["dataset"]) for t in data["tables"]] == [LUNG, PBMC]
    lung, pbmc = data["tables"]
    assert lung["ranked_by"] is None and lung["min_max_scaled"] is None
    assert [(c["id"], c["kind"], c["higher_is_better"]) for c in lung["columns"]] == [
        ("error", "metric", False),
        ("f1", "metric", True),
    ]
    assert pbmc["ranked_by"] == "total" and pbmc["min_max_scaled"] is False and pbmc["family"] == "embedding"
    assert pbmc["columns"] == [
        {"id": "ari", "metric": "ari", "submetric": None, "family": "bio", "kind": "metric", "higher_is_better": True},
        {
            "id": "total",
            "metric": "total",
            "submetric": None,
            "family": "aggregate",
            "kind": "aggregate",
            "higher_is_better": True,
        },
    ]
    nan_reason = "NaN | inf in embedding"
    gpu = {"mean": None, "sd": None, "n": 0, "status": "skipped", "reason": "needs a GPU [cuda]"}
    assert pbmc["rows"] == [
        {
            "rank": 1,
            "model": "pca",
            "reference": False,
            "status": "ok",
            "reason": None,
            "seeds": 3,
            "embed_s": 2.0,
            "cells_per_s": None,
            "peak_ram_mb": 200.0,
            "peak_gpu_mb": None,
            "values": {
                "ari": {"mean": 0.5, "sd": 0.25, "n": 3, "status": "ok", "reason": None},
                "total": {"mean": 0.5, "sd": 0.125, "n": 3, "status": "ok", "reason": None},
            },
        },
        {
            "rank": 2,
            "model": "scgpt",
            "reference": False,
            "status": "incomplete",
            "reason": INCOMPLETE,
            "seeds": 2,
            "embed_s": 4.5,
            "cells_per_s": 200.0,
            "peak_ram_mb": 1024.0,
            "peak_gpu_mb": 2048.0,
            "values": {
                "ari": {"mean": 0.875, "sd": None, "n": 1, "status": "partial", "reason": nan_reason},
                "total": {"mean": 0.75, "sd": None, "n": 1, "status": "partial", "reason": nan_reason},
            },
        },
        {
            "rank": None,
            "model": "geneformer",
            "reference": False,
            "status": "skipped",
            "reason": "needs a GPU [cuda]",
            "seeds": 1,
            "embed_s": None,
            "cells_per_s": None,
            "peak_ram_mb": None,
            "peak_gpu_mb": None,
            "values": {"ari": gpu, "total": gpu},
        },
    ]
    assert [(r["model"], r["rank"], r["values"]["error"]["mean"]) for r in lung["rows"]] == [
        ("svm", 1, 0.125),
        ("knn", 2, 0.25),
    ]


def test_terminal_shows_every_value_and_reason(lb):
    console = Console(record=True, width=200)
    render_terminal(lb, console)
    text = console.export_text()
    lines = [" ".join(ln.replace("│", " ").split()) for ln in text.splitlines()]
    assert "integration · pbmc" in lines and "annotation · lung" in lines
    assert f"2 scgpt 0.875 0.750 — 4.50 200 1024 2048 incomplete {INCOMPLETE}" in lines
    assert f"1 pca 0.500 ± 0.250 0.500 ± 0.125 {PCA_CI} 2.00 — 200 — ok —" in lines
    assert "— geneformer — — — — — — — skipped needs a GPU [cuda]" in lines  # printed literally, not as markup
    assert "1 svm 0.125 0.750 — — — — ok —" in lines and "2 knn 0.250 0.500 — — — — ok —" in lines
    assert any(ln.startswith("Ranked by total (higher is better). Values are raw (not min-max scaled).") for ln in lines)
    assert any(ln.startswith("Ranked by the mean of the metrics (lower-is-better ones negated).") for ln in lines)


def _main_view(report, key=PBMC):
    return dataset_section(report, key, report.tables[key]).views[0]


def test_terminal_styles_failed_skipped_rows_and_aggregates(lb, rec):
    view = _main_view(lb)
    table = _rich_table(view, "t", "", list(range(len(view.header))))
    assert [row.style for row in table.rows] == [None, "yellow", "yellow"]
    assert {c.header: c.style for c in table.columns}["total ↑"] == "bold"
    assert not {c.header: c.style for c in table.columns}["ari ↑"]
    failed = build_report([rec("a", "*", status="failed", reason="bad", family=None)], kinds={})
    view = _main_view(failed)
    assert [row.style for row in _rich_table(view, "t", "", list(range(len(view.header)))).rows] == ["red"]
    assert dataset_section(failed, PBMC, failed.tables[PBMC]).notes[0] == "Unranked: no model has a score."


def test_empty_report_exports():
    report = build_report([], kinds={})
    assert _parse_markdown(to_markdown(report)) == {}
    assert json.loads(to_json(report))["tables"] == []
