import json

import pytest

from scfm_bench.exceptions import RecordsError
from scfm_bench.records import MetricResult, RunWriter, latest_per_key, read_records


def rec(**kw):
    base = dict(run_id="r1", task="t", dataset="d", model="m", seed=0, metric="x", value=0.5)
    return MetricResult(**{**base, **kw})


def test_roundtrip(tmp_path):
    w = RunWriter(tmp_path, "r1")
    w.append([rec(), rec(metric="y", value=None, status="failed", reason="boom")])
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
    with pytest.raises(RecordsError, match="not valid JSON"):
        read_records(tmp_path)
    f.write_text(json.dumps({**json.loads(rec().model_dump_json()), "schema_version": 99}) + "\n")
    with pytest.raises(RecordsError, match="schema_version 99"):
        read_records(tmp_path)
