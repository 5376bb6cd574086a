import shutil
from pathlib import Path

import pytest

from scfm_bench.config import load_suite, packaged_suite_dir
from scfm_bench.config.suite import cross_check
from scfm_bench.exceptions import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def copy_suite(tmp_path) -> Path:
    dst = tmp_path / "suite"
    shutil.copytree(packaged_suite_dir(), dst)
    return dst


def test_packaged_suite_is_valid():
    suite = load_suite(packaged_suite_dir())
    assert cross_check(suite) == []
    assert {"zero_shot_clustering", "batch_integration"} <= set(suite.tasks)


def test_top_level_suite_is_the_packaged_one():
    """The checkout's datasets.yaml/tasks/metrics are the packaged files (symlinks), never diverging copies."""
    for name in ("datasets.yaml", "tasks", "metrics"):
        assert (ROOT / name).resolve() == (packaged_suite_dir() / name).resolve()


def test_misspelled_key_points_to_line(tmp_path):
    d = copy_suite(tmp_path)
    p = d / "tasks" / "batch_integration.yaml"
    lines = p.read_text().splitlines()
    lines.insert(3, "modles: [pca]")
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as e:
        load_suite(d)
    msg = str(e.value)
    assert "batch_integration.yaml:4" in msg and "unknown key 'modles'" in msg and "models" in msg


def test_malformed_yaml_points_to_line(tmp_path):
    d = copy_suite(tmp_path)
    (d / "metrics" / "zero_shot.yaml").write_text("metrics:\n  - {id: a, metric: b\n")
    with pytest.raises(ConfigError, match=r"zero_shot.yaml:\d+: not valid YAML"):
        load_suite(d)


def test_cross_check_finds_bad_references(tmp_path):
    d = copy_suite(tmp_path)
    p = d / "tasks" / "zero_shot_clustering.yaml"
    p.write_text(p.read_text().replace("models: [hvg,", "models: [hgv,").replace("pbmc68k_semisynthetic", "nope"))
    problems = cross_check(load_suite(d))
    assert any("Unknown model 'hgv'" in x and "Did you mean 'hvg'" in x for x in problems)
    assert any("dataset 'nope' is not in datasets.yaml" in x for x in problems)


def test_suite_dir_without_catalogue(tmp_path):
    with pytest.raises(ConfigError, match="no datasets.yaml"):
        load_suite(tmp_path)
