"""The CLI as a user types it: exit codes, messages, and start-up without heavy imports."""

import json
import subprocess
import sys

import pytest


def cli(*args, cwd=None, env_extra=None):
    import os

    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "scfm_bench", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=600)


def test_help_and_list_do_not_import_heavy_libraries():
    code = ("import sys; from scfm_bench.cli import app; from scfm_bench.cli.listing import rows, What;"
            "[rows(w) for w in What];"
            "print([m for m in ('torch', 'jax', 'scvi', 'scanpy', 'anndata', 'scib_metrics') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_help():
    r = cli("--help")
    assert r.returncode == 0 and "run" in r.stdout and "report" in r.stdout


@pytest.mark.parametrize("what", ["models", "tasks", "metrics", "datasets"])
def test_list_json(what, tmp_path):
    r = cli("list", what, "--format", "json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)


def test_validate_ok_and_bad(tmp_path):
    assert cli("validate", cwd=tmp_path).returncode == 0
    (tmp_path / "datasets.yaml").write_text("version: 1\ndatasets:\n  x:\n    source: builtin\n    buildr: synthetic\n")
    r = cli("validate", cwd=tmp_path)
    assert r.returncode == 2 and "datasets.yaml:5" in r.stderr and "buildr" in r.stderr


def test_unknown_model_exit_2(tmp_path):
    r = cli("run", "--model", "pcaa", "--dry-run", cwd=tmp_path)
    assert r.returncode == 2 and "Did you mean 'pca'" in r.stderr


def test_dry_run_matrix_with_variadic_seeds(tmp_path):
    r = cli("run", "--task", "batch_integration", "--model", "pca", "--model", "harmony", "--seeds", "0", "1", "2",
            "--dry-run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "6 cells" in r.stdout and "harmony" in r.stdout


def test_missing_h5ad_exit_2(tmp_path):
    r = cli("run", "--dataset", str(tmp_path / "missing.h5ad"), cwd=tmp_path)
    assert r.returncode == 2 and "missing.h5ad" in r.stderr


def test_report_on_corrupt_results_exit_2(tmp_path):
    f = tmp_path / "runs" / "x" / "records.jsonl"
    f.parent.mkdir(parents=True)
    f.write_text("{not json\n")
    r = cli("report", str(tmp_path))
    assert r.returncode == 2 and "not valid JSON" in r.stderr


def test_info_json():
    r = cli("info", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["device_resolved"] == "cpu"


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    ("[Term\nid: CL:1\nis_a: {{{ garbage\n", "not a readable OBO file"),
    ("format-version: 1.2\n\n[Term]\nid: GO:0000001\nname: x\n", "no CL: terms"),
])
def test_bad_user_ontology_file_exit_2_and_nothing_written(content, message, tmp_path):
    """A metric option naming a bad ontology file stops `run` (and `validate`) before any record exists."""
    import yaml

    onto = tmp_path / "my_cl.obo"
    if content is not None:
        onto.write_text(content)
    (tmp_path / "metrics").mkdir()
    (tmp_path / "tasks").mkdir()
    (tmp_path / "metrics" / "zero_shot.yaml").write_text(yaml.safe_dump({"metrics": [
        {"id": "rwr", "metric": "scgraph_ontorwr", "output": "pearson", "family": "ontology",
         "kwargs": {"ontology": str(onto)}}]}))
    (tmp_path / "tasks" / "zs.yaml").write_text(yaml.safe_dump(
        {"task": "zero_shot_clustering", "datasets": ["tiny"], "models": ["pca"]}))
    (tmp_path / "datasets.yaml").write_text(yaml.safe_dump({"version": 1, "datasets": {"tiny": {
        "source": "builtin", "builder": "synthetic", "params": {"n_cells": 100, "n_genes": 50},
        "fields": {"label": "cell_type", "ontology_id": "cell_type_ontology_term_id"}}}}))
    r = cli("run", "-o", str(tmp_path / "out"), cwd=tmp_path, env_extra={"COLUMNS": "1000"})  # no wrapped lines
    assert r.returncode == 2, r.stderr
    assert str(onto) in r.stderr and message in r.stderr and "Fix:" in r.stderr
    assert not (tmp_path / "out").exists()
    assert cli("validate", cwd=tmp_path).returncode == 2
