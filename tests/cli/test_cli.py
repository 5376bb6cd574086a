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
    r = cli("info", "--format", "json")
    assert r.returncode == 0 and json.loads(r.stdout)["device_resolved"] == "cpu"


def test_version():
    from scfm_bench import __version__

    r = cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"scfm-bench {__version__}"


@pytest.mark.parametrize("args", [("list", "models"), ("info",), ("validate",)])
def test_format_json_and_out_file(args, tmp_path):
    """One way to ask for JSON (--format json) and one to write a file (--out), in every command that prints data."""
    out = tmp_path / "x" / "out.json"
    r = cli(*args, "--format", "json", "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and f"wrote {out}" in r.stderr
    assert json.loads(out.read_text())
    table = tmp_path / "table.txt"
    assert cli(*args, "--out", str(table), cwd=tmp_path).returncode == 0 and table.read_text().strip()


def test_list_takes_singular_words(tmp_path):
    assert json.loads(cli("list", "model", "--format", "json", cwd=tmp_path).stdout) == \
        json.loads(cli("list", "models", "--format", "json", cwd=tmp_path).stdout)
    r = cli("list", "modles", cwd=tmp_path)
    assert r.returncode == 2 and "list one of models, tasks, metrics, datasets" in r.stderr


def test_validate_json_lists_problems_and_exits_2(tmp_path):
    (tmp_path / "datasets.yaml").write_text("version: 1\ndatasets: {}\n")
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "t.yaml").write_text("task: zero_shot_clustering\ndatasets: [nope]\nmodels: [pca]\n")
    r = cli("validate", "--format", "json", cwd=tmp_path)
    data = json.loads(r.stdout)
    assert r.returncode == 2 and data["valid"] is False and any("'nope'" in p for p in data["problems"])


def test_singular_words_and_batch_size_on_run(tmp_path):
    r = cli("run", "--task", "zero_shot_clustering", "--model", "pca", "--batch-size", "8", "--dry-run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "1 cell (suite:" in r.stdout and "1 cells" not in r.stdout
    r = cli("run", "--batch-size", "0", "--dry-run", cwd=tmp_path)
    assert r.returncode == 2 and "batch_size" in r.stderr


def test_pyproject_licence_is_an_spdx_expression_without_deprecation_warnings():
    """setuptools deprecates the `license = {text = ...}` table; with warnings as errors the metadata still applies."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    code = ("from setuptools.dist import Distribution; from setuptools.config.pyprojecttoml import apply_configuration;"
            "d = apply_configuration(Distribution(), 'pyproject.toml'); print(d.metadata.license_expression, d.metadata.license_files)")
    r = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, cwd=root)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "MIT ['LICENSE']" and (root / "LICENSE").is_file()


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
