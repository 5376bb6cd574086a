from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

from scfm_bench.leaderboard.compare import compare_records, to_junit
from scfm_bench.records import RunManifest, RunWriter


def _base(rec):
    return [rec("pca", "ari", 0.5), rec("pca", "err", 0.2, higher_is_better=False), rec("hvg", "ari", 0.4),
            rec("scvi", "ari", 0.6), rec("gone", "ari", 0.3)]


def _new(rec):
    return [rec("pca", "ari", 0.505),  # within tolerance
            rec("pca", "err", 0.25, higher_is_better=False),  # lower is better: up is a regression
            rec("hvg", "ari", 0.45),  # improvement
            rec("scvi", "*", status="failed", reason="NaN in embedding", family=None),  # ok -> failed
            rec("new_model", "ari", 0.7)]


def test_compare_classifies_every_cell(rec):
    r = compare_records(_base(rec), _new(rec), tolerance=0.01)
    got = {(c.model, c.metric): c.status for c in r.cells}
    assert got == {("pca", "ari"): "unchanged", ("pca", "err"): "regression", ("hvg", "ari"): "improvement",
                   ("scvi", "ari"): "regression", ("gone", "ari"): "missing",
                   ("new_model", "ari"): "new"}
    assert r.failed
    assert compare_records(_base(rec), _new(rec), tolerance=0.1, metrics=["ari"]).count("regression") == 1  # scvi


def test_failed_now_is_a_regression_and_identical_passes(rec):
    base = [rec("a", "ari", 0.5)]
    r = compare_records(base, [rec("a", "ari", status="failed", reason="boom")])
    assert [(c.status, c.note) for c in r.cells] == [("regression", "now failed: boom")]
    assert not compare_records(base, base).failed


def test_provenance_changes_are_listed(rec):
    b = [rec("a", "ari", 0.5).model_copy(update={"dataset_sha256": "1" * 64})]
    n = [rec("a", "ari", 0.5, params={"ontology_version": "v2"}).model_copy(update={"dataset_sha256": "2" * 64})]
    mb = RunManifest(run_id="b", package_version="0.1.0", packages={"numpy": "2.0"})
    mn = RunManifest(run_id="n", package_version="0.2.0", packages={"numpy": "2.1"})
    r = compare_records(b, n, base_manifests=[mb], new_manifests=[mn])
    assert r.provenance == (f"pbmc: dataset sha256 ['{'1' * 64}'] -> ['{'2' * 64}']", "pbmc: CL version [] -> ['v2']",
                            "package numpy: 2.0 -> 2.1", "package scfm-bench: 0.1.0 -> 0.2.0")
    assert not r.failed  # provenance is reported, not gating
    assert r.not_compared == ()


def test_compare_without_manifest_says_packages_were_not_compared(rec, tmp_path):
    mn = RunManifest(run_id="n", package_version="0.2.0", packages={"numpy": "2.1", "scanpy": "1.10"})
    r = compare_records([rec("a", "ari", 0.5)], [rec("a", "ari", 0.5)], new_manifests=[mn])
    assert not any(p.startswith("package") for p in r.provenance)
    assert r.not_compared == ("package versions not compared: no run manifest (manifest.json) beside the baseline records",)
    base = RunWriter(tmp_path / "b", "r0").write("job", [rec("a", "ari", 0.5)])
    new = _write(tmp_path / "new", [rec("a", "ari", 0.5)])
    out = _cli("compare", str(base), str(new))
    text = " ".join(out.stdout.split())
    assert out.returncode == 0 and "package versions not compared: no run manifest" in text and "provenance changed" not in text


def test_junit_has_one_testcase_per_cell(rec):
    root = ET.fromstring(to_junit(compare_records(_base(rec), _new(rec))))
    cases = root.findall("testcase")
    assert len(cases) == 6 and root.get("failures") == "3"
    failing = {c.get("classname") + "/" + c.get("name") for c in cases if c.find("failure") is not None}
    assert failing == {"integration.pbmc.pca/err[seed=0]", "integration.pbmc.scvi/ari[seed=0]",
                       "integration.pbmc.gone/ari[seed=0]"}


def _write(folder: Path, records) -> Path:
    w = RunWriter(folder, "r1")
    w.write_manifest(RunManifest(run_id="r1", package_version="0.1.0"))
    w.write("job", records)
    return folder


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "scfm_bench", *args], capture_output=True, text=True, check=False)


def test_compare_cli_exit_codes_junit_and_json(rec, tmp_path):
    base, new = _write(tmp_path / "base", _base(rec)), _write(tmp_path / "new", _new(rec))
    r = _cli("compare", str(base), str(base))
    assert r.returncode == 0, r.stderr
    r = _cli("compare", str(base), str(new), "--junit", str(tmp_path / "j.xml"))
    assert r.returncode == 1 and "regression" in r.stdout and "1 missing" in r.stdout and "now failed: NaN in embedding" in r.stdout
    assert ET.parse(tmp_path / "j.xml").getroot().get("failures") == "3"
    r = _cli("compare", str(base), str(new), "--format", "json", "--out", str(tmp_path / "c.json"))
    assert r.returncode == 1 and f"comparison written to {tmp_path / 'c.json'}" in " ".join(r.stderr.split())
    assert json.loads((tmp_path / "c.json").read_text())["failed"] is True
    r = _cli("compare", str(base), str(new), "--format", "json")
    assert r.returncode == 1 and json.loads(r.stdout)["not_compared"] == []
    (tmp_path / "empty").mkdir()
    assert _cli("compare", str(base), str(tmp_path / "empty")).returncode == 2
