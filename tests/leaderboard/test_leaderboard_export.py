from __future__ import annotations

import io
import json
import re

import pandas as pd
import pytest
from rich.console import Console

from scfm_bench.leaderboard import build_leaderboard, render_terminal, to_csv, to_json, to_markdown
from scfm_bench.leaderboard.terminal import _rich_table

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
    return build_leaderboard(records)


PBMC_ROWS = [
    ["1", "scgpt", "0.875", "0.750", "4.50", "200", "1024", "2048", "partial", "NaN | inf in embedding"],
    ["2", "pca", "0.500 ± 0.250", "0.500 ± 0.125", "2.00", "—", "200", "—", "ok", "—"],
    ["—", "geneformer", "—", "—", "—", "—", "—", "—", "skipped", "needs a GPU [cuda]"],
]
LUNG_ROWS = [
    ["1", "svm", "0.125", "0.750", "—", "—", "—", "—", "ok", "—"],
    ["2", "knn", "0.250", "0.500", "—", "—", "—", "—", "ok", "—"],
]


def _parse_markdown(text: str) -> dict[str, tuple[list[str], list[str], list[list[str]]]]:
    """{heading: (captions, header, rows)} with escaped pipes restored."""
    out = {}
    for section in text.strip().split("\n\n## "):
        heading, *lines = section.removeprefix("## ").splitlines()
        captions = [ln for ln in lines if ln and not ln.startswith("|")]
        cells = [
            [c.strip().replace(r"\|", "|") for c in re.split(r"(?<!\\)\|", ln)[1:-1]]
            for ln in lines
            if ln.startswith("|")
        ]
        out[heading] = (captions, cells[0], cells[2:])
    return out


def test_markdown_holds_exactly_the_expected_cells(lb):
    md = _parse_markdown(to_markdown(lb))
    assert list(md) == ["annotation · lung", "integration · pbmc"]
    captions, header, rows = md["integration · pbmc"]
    assert captions == ["Ranked by total (higher is better). Values are raw (not min-max scaled)."]
    assert header == ["rank", "model", "ari ↑", "total ↑", "embed_s", "cells_per_s", "peak_ram_mb", "peak_gpu_mb", "status", "reason"]
    assert rows == PBMC_ROWS
    captions, header, rows = md["annotation · lung"]
    assert captions == ["Ranked by the mean of the metrics (lower-is-better ones negated)."]
    assert header == ["rank", "model", "error ↓", "f1 ↑", "embed_s", "cells_per_s", "peak_ram_mb", "peak_gpu_mb", "status", "reason"]
    assert rows == LUNG_ROWS


def test_csv_round_trips_the_long_format(lb):
    buf = io.StringIO()
    to_csv(lb, buf)
    df = pd.read_csv(io.StringIO(buf.getvalue()), dtype=str, keep_default_na=False)
    assert list(df.columns) == [
        "task",
        "dataset",
        "model",
        "metric",
        "submetric",
        "mean",
        "sd",
        "n",
        "status",
        "reason",
        "rank",
    ]
    pbmc = [
        ("integration", "pbmc", *row)
        for row in [
            ("scgpt", "ari", "", "0.875", "", "1", "partial", "NaN | inf in embedding", "1"),
            ("scgpt", "total", "", "0.75", "", "1", "partial", "NaN | inf in embedding", "1"),
            ("pca", "ari", "", "0.5", "0.25", "3", "ok", "", "2"),
            ("pca", "total", "", "0.5", "0.125", "3", "ok", "", "2"),
            ("geneformer", "ari", "", "", "", "0", "skipped", "needs a GPU [cuda]", ""),
            ("geneformer", "total", "", "", "", "0", "skipped", "needs a GPU [cuda]", ""),
        ]
    ]
    lung = [
        ("annotation", "lung", *row)
        for row in [
            ("svm", "error", "", "0.125", "", "1", "ok", "", "1"),
            ("svm", "f1", "", "0.75", "", "1", "ok", "", "1"),
            ("knn", "error", "", "0.25", "", "1", "ok", "", "2"),
            ("knn", "f1", "", "0.5", "", "1", "ok", "", "2"),
        ]
    ]
    assert [tuple(r) for r in df.itertuples(index=False)] == lung + pbmc


def test_json_is_structured_and_exact(lb):
    data = json.loads(to_json(lb))
    assert [(t["task"], t["dataset"]) for t in data["tables"]] == [LUNG, PBMC]
    lung, pbmc = data["tables"]
    assert lung["ranked_by"] is None and lung["min_max_scaled"] is None
    assert [(c["id"], c["kind"], c["higher_is_better"]) for c in lung["columns"]] == [
        ("error", "metric", False),
        ("f1", "metric", True),
    ]
    assert pbmc["ranked_by"] == "total" and pbmc["min_max_scaled"] is False
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
            "model": "scgpt",
            "status": "partial",
            "reason": nan_reason,
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
            "rank": 2,
            "model": "pca",
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
            "rank": None,
            "model": "geneformer",
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
    assert "1 scgpt 0.875 0.750 4.50 200 1024 2048 partial NaN | inf in embedding" in lines
    assert "2 pca 0.500 ± 0.250 0.500 ± 0.125 2.00 — 200 — ok —" in lines
    assert "— geneformer — — — — — — skipped needs a GPU [cuda]" in lines  # printed literally, not as markup
    assert "1 svm 0.125 0.750 — — — — ok —" in lines and "2 knn 0.250 0.500 — — — — ok —" in lines
    assert "Ranked by total (higher is better). Values are raw (not min-max scaled)." in lines
    assert "Ranked by the mean of the metrics (lower-is-better ones negated)." in lines


def test_terminal_styles_failed_skipped_rows_and_aggregates(lb, rec):
    table = _rich_table(lb.tables[PBMC])
    assert [row.style for row in table.rows] == [None, None, "yellow"]
    assert {c.header: c.style for c in table.columns}["total ↑"] == "bold"
    assert not {c.header: c.style for c in table.columns}["ari ↑"]
    failed = build_leaderboard([rec("a", "*", status="failed", reason="bad", family=None)]).tables[PBMC]
    assert [row.style for row in _rich_table(failed).rows] == ["red"]
    assert _rich_table(failed).caption == "Unranked: no model has a score."


def test_empty_leaderboard_exports(rec):
    lb = build_leaderboard([])
    assert to_markdown(lb) == ""
    assert json.loads(to_json(lb)) == {"tables": []}
