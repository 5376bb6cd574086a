"""`scfm-bench report` on records as the runner writes them: leaderboards that cannot mislead."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from rich.console import Console

from scfm_bench.leaderboard import build_report, render_terminal
from scfm_bench.records import RunManifest, RunWriter

EMB = {"task_family": "embedding", "primary": "total", "min_max_scaled": False}
PERT = {"task_family": "perturbation", "primary": "pearson_delta_pert"}
ONTO_SKIP = "needs ontology_ids, which this dataset/task does not provide"


def _records(rec):
    out = []
    for task in ("batch_integration", "zero_shot_clustering"):
        for model, kind, v in (("pca", "baseline", 0.5), ("harmony", "baseline", 0.6), ("label_onehot", "ceiling", 0.95),
                               ("random", "control", 0.1)):
            p = {**EMB, "kind": kind, "n_cells": 1000, "embedding_info": {}}
            if model == "pca":
                p["embedding_info"] = {"computed_in": "preprocessing (X_pca)"}
            t = {"task": task, "dataset": "pbmc", "params": p, "embed_s": 0.001 if model == "pca" else 2.0}
            out += [rec(model, "silhouette_label", v, **t), rec(model, "total", v, family="aggregate", **t),
                    rec(model, "lcad_n_errors", 100 * (1 - v), family="ontology", higher_is_better=False,
                        **{**t, "params": {**p, "count": True}}),
                    rec(model, "scgraph", status="skipped", reason=f"scgraph: {ONTO_SKIP}", family="ontology", **t),
                    rec(model, "rogi", status="skipped", reason=f"rogi: {ONTO_SKIP}", family="ontology", **t)]
    for model, kind, v in (("mean", "baseline", 0.3), ("lin_pca", "baseline", 0.4), ("noise_ceiling", "ceiling", 0.9),
                           ("ridge_random", "control", 0.2)):
        p = {**PERT, "kind": kind}
        out.append(rec(model, "pearson_delta_pert", v, task="perturbation", dataset="norman", family="headline", params=p))
    return out


def _write(tmp_path, rec, manifest=True):
    w = RunWriter(tmp_path / "res", "r1")
    if manifest:
        w.write_manifest(RunManifest(run_id="r1", package_version="0.1.0"))
    w.write("job", _records(rec))
    return tmp_path / "res"


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "scfm_bench", *args], capture_output=True, text=True, check=False)


def test_families_never_share_a_ranking_and_references_are_never_ranked(rec, tmp_path):
    res = _write(tmp_path, rec)
    r = _cli("report", str(res), "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert set(doc["overall"]) == {"embedding"}  # perturbation has one table: no overall of its own
    models = {row["model"]: row for row in doc["overall"]["embedding"]}
    assert set(models) == {"pca", "harmony", "label_onehot", "random"}  # no perturbation predictor here
    assert models["label_onehot"]["mean_rank"] is None and models["random"]["ranked_in"] == 0
    assert models["harmony"]["mean_rank"] == 1.0
    pert = next(t for t in doc["tables"] if t["task"] == "perturbation")
    assert pert["family"] == "perturbation"
    ranks = {row["model"]: (row["rank"], row["reference"]) for row in pert["rows"]}
    # the noise ceiling scores best and is still not ranked #1: it is a reference row
    assert ranks == {"lin_pca": (1, False), "mean": (2, False), "noise_ceiling": (None, True), "ridge_random": (None, True)}

    md = _cli("report", str(res), "--format", "md").stdout
    assert "| ref | noise_ceiling |" in md and "| 1 | lin_pca |" in md
    assert "ref: a control or ceiling (declared kind), shown for reference and never ranked." in md


def test_counts_are_counts_and_untimed_pca_shows_no_speed(rec, tmp_path):
    report = build_report(_records(rec))
    key = ("batch_integration", "pbmc")
    s = report.scores[(report.scores["task"] == key[0])].set_index(["model", "column"])
    assert s["min_max"].notna()[("pca", "total")] and s["min_max"].isna()[("pca", "lcad_n_errors")]
    assert s["control_scaled"].isna()[("harmony", "lcad_n_errors")]
    assert s.loc[("harmony", "total"), "control_scaled"] == (0.6 - 0.1) / (0.95 - 0.1)  # 0 = control, 1 = ceiling
    md = _cli("report", str(_write(tmp_path, rec)), "--format", "md").stdout
    section = md.split("## batch_integration · pbmc")[1].split("## ")[0]
    header = next(ln for ln in section.splitlines() if ln.startswith("| rank"))
    assert "lcad_n_errors ↓ (count)" in header
    cells = {ln.split(" | ")[1]: [c.strip() for c in ln.strip("| ").split(" | ")] for ln in section.splitlines()
             if ln.startswith("| 1 |") or ln.startswith("| 2 |")}
    cols = [c.strip() for c in header.strip("| ").split(" | ")]
    assert cells["harmony"][cols.index("lcad_n_errors ↓ (count)")] == "40"
    assert cells["pca"][cols.index("embed_s")] == "—" and cells["pca"][cols.index("cells_per_s")] == "—"
    assert cells["harmony"][cols.index("cells_per_s")] == "500"
    assert "pca: embedding computed in preprocessing (X_pca); embed_s and cells_per_s are not measured for it (—)." in section
    scaled = section.split("**Min-max-scaled")[1].split("**", 2)[1]
    assert "silhouette_label" in scaled and "lcad_n_errors" not in scaled


def test_shared_skip_reason_is_one_footnote(rec, tmp_path):
    md = _cli("report", str(_write(tmp_path, rec)), "--format", "md").stdout
    section = md.split("## zero_shot_clustering · pbmc")[1]
    assert section.count(ONTO_SKIP) == 1
    assert f"[1] scgraph, rogi: {ONTO_SKIP}" in section
    rows = [ln for ln in section.splitlines() if ln.startswith("| ") and "| ok |" not in ln and "rank" not in ln]
    assert all(ln.rstrip(" |").endswith("[1]") for ln in rows if "partial" in ln) and len(rows) >= 4


def test_terminal_never_drops_the_model_column(rec):
    console = Console(record=True, width=70)
    render_terminal(build_report(_records(rec)), console)
    text = console.export_text()
    assert "continue in the next table" in text and "(continued)" in text
    # every part of a split table still has the model column, and no model name is truncated
    parts = text.split("(continued)")[1:]
    assert len(parts) > 2 and all("┃ model" in p.split("┡")[0] for p in parts)
    assert "label_onehot" in parts[0] and "…" not in text


def test_report_out_says_where_it_wrote(rec, tmp_path):
    res = _write(tmp_path, rec)
    for fmt in ("md", "term", "csv", "json"):
        out = tmp_path / f"report.{fmt}"
        r = _cli("report", str(res), "--format", fmt, "--out", str(out))
        assert r.returncode == 0 and r.stdout == "" and out.stat().st_size > 0
        assert f"report ({fmt}) written to {out}" in " ".join(r.stderr.split())


def _contains_estimates(comparisons):
    with_interval = [c for c in comparisons if c["ci_low"] is not None]
    assert all(c["ci_low"] <= c["diff"] <= c["ci_high"] for c in with_interval), with_interval
    return with_interval


@pytest.mark.slow
def test_paired_intervals_on_real_cells_contain_their_estimates(shared_data, tmp_path):
    """The run writes per-cell units; the report pairs pca and hvg on the same cells of a real file."""
    r = _cli("run", "-o", str(tmp_path / "res"), "--dataset", str(shared_data / "pbmc_3chem_1k2.h5ad"), "--label-key",
             "cell_type", "--batch-key", "batch", "--task", "zero_shot_clustering", "--model", "pca", "--model", "hvg",
             "--quiet")
    assert r.returncode == 0, r.stderr[-2000:]
    assert list((tmp_path / "res").glob("runs/*/units/zero_shot_clustering__pbmc_3chem_1k2__hvg__seed0.csv.gz"))
    doc = json.loads(_cli("report", str(tmp_path / "res"), "--format", "json").stdout)
    comps = {c["column"]: c for c in doc["comparisons"]}
    assert comps["avg_bio"]["marker"] == "?" and comps["avg_bio"]["ci_low"] is None  # one seed, no units
    asw = comps["asw_label"]
    assert (asw["unit"], asw["n"]) == ("cells", 1200) and asw["marker"] in "▲▼≈"
    assert _contains_estimates(doc["comparisons"]) == [asw]


def test_report_unseen_only_flag(tmp_path, rec):
    """--unseen-only drops the cells whose dataset the model's corpus holds and says so; without it they rank."""
    w = RunWriter(tmp_path / "res", "r1")
    w.write_manifest(RunManifest(run_id="r1", package_version="0.1.0", suite={"datasets": {"pbmc": {"in_pretraining": ["harmony"]}}}))
    w.write("job", _records(rec))
    full = _cli("report", str(tmp_path / "res"), "-f", "md")
    unseen = _cli("report", str(tmp_path / "res"), "-f", "md", "--unseen-only")
    assert full.returncode == unseen.returncode == 0, unseen.stderr
    assert "| harmony †" in full.stdout and "unseen-only" not in full.stdout
    assert "| harmony" not in unseen.stdout
    assert "unseen-only view: harmony left out" in unseen.stdout + unseen.stderr
