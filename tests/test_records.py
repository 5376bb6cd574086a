import json

import pytest

from scfm_bench.exceptions import RecordsError
from scfm_bench.records import MetricResult, RunWriter, latest_per_key, read_records


def rec(**kw):
    base = dict(run_id="r1", task="t", dataset="d", model="m", seed=0, metric="x", value=0.5)
    return MetricResult(**{**base, **kw})


def test_roundtrip(tmp_path):
    w = RunWriter(tmp_path, "r1")
    w.write("job", [rec(), rec(metric="y", value=None, status="failed", reason="boom")])
    back = read_records(tmp_path)
    assert [r.metric for r in back] == ["x", "y"] and back[1].reason == "boom"


def test_ok_needs_value_and_failed_needs_reason():
    with pytest.raises(ValueError):
        rec(value=None)
    with pytest.raises(ValueError):
        rec(status="failed", value=None)
    with pytest.raises(ValueError):
        rec(status="skipped", value=0.1, reason="x")


def test_latest_wins():
    old = rec(value=0.1, created_at="2026-01-01T00:00:00+00:00")
    new = rec(value=0.9, created_at="2026-02-01T00:00:00+00:00")
    assert [r.value for r in latest_per_key([old, new])] == [0.9]


def test_corrupt_and_empty_and_future_schema(tmp_path):
    with pytest.raises(RecordsError, match="does not exist"):
        read_records(tmp_path / "nope")
    with pytest.raises(RecordsError, match="No records.jsonl"):
        read_records(tmp_path)
    f = tmp_path / "runs" / "a" / "records.jsonl"
    f.parent.mkdir(parents=True)
    f.write_text("")
    with pytest.raises(RecordsError, match="hold no records"):
        read_records(tmp_path)
    f.write_text('{"schema_version": 1, "run_id": "a"')
    with pytest.raises(RecordsError, match="hold no records .1 line.s. skipped as not valid JSON"):
        read_records(tmp_path)
    f.write_text(json.dumps({**json.loads(rec().model_dump_json()), "schema_version": 99}) + "\n")
    with pytest.raises(RecordsError, match="schema_version 99"):
        read_records(tmp_path)


def test_torn_line_is_reported_and_skipped(tmp_path, caplog):
    f = tmp_path / "runs" / "a" / "records.jsonl"
    f.parent.mkdir(parents=True)
    whole = rec().model_dump_json() + "\n"
    f.write_text(whole + rec(metric="y").model_dump_json()[:40])  # killed mid-line
    assert [r.metric for r in read_records(tmp_path)] == ["x"]
    assert "records.jsonl:2: skipped a line that is not valid JSON" in caplog.text


def test_nan_is_never_an_ok_record():
    with pytest.raises(ValueError, match="finite"):
        rec(value=float("nan"))
    with pytest.raises(ValueError, match="finite"):
        rec(value=float("inf"))


def test_latest_wins_per_cell():
    t = iter(f"2026-01-01T00:00:0{i}+00:00" for i in range(10))
    old = [rec(metric="x", value=0.1, created_at=next(t)), rec(metric="y", value=0.2, created_at=next(t))]
    failed = rec(metric="*", value=None, status="failed", reason="OOM", created_at=next(t))
    assert latest_per_key([*old, failed]) == [failed]  # stale values do not survive a newer whole-cell failure
    again = [rec(metric="x", value=0.3, created_at=next(t)), rec(metric="y", value=0.4, created_at=next(t))]
    assert [r.value for r in latest_per_key([*old, failed, *again])] == [0.3, 0.4]  # a success supersedes the failure
    other = rec(model="m2", metric="*", value=None, status="skipped", reason="no batch", created_at=next(t))
    assert len(latest_per_key([*old, other])) == 3  # other cells untouched
    assert [r.value for r in latest_per_key([*again, *old])] == [0.3, 0.4]  # by time, not by list order


def test_writer_one_atomic_file_per_job_and_no_folder_before_records(tmp_path):
    from scfm_bench.records import RunManifest

    w = RunWriter(tmp_path, "r1", RunManifest(run_id="r1", package_version="0"))
    assert not (tmp_path / "runs").exists()
    p1 = w.write("t/d/m seed 0", [rec()])
    w.write("t/d/m seed 1", [rec(seed=1)])
    w.write("t/d/m seed 0", [rec(value=0.7)])  # a job's file is replaced, never appended to
    assert p1.parent == w.dir / "records" and (w.dir / "manifest.json").is_file()
    assert sorted(r.value for r in read_records(tmp_path)) == [0.5, 0.7]
    assert not [p for p in w.dir.rglob("*") if ".tmp" in p.name]
