"""Records stay true under faults: every scenario ends with the complete, correct set of records,
none duplicated or lost (compared value for value with a clean run)."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from scfm_bench.exceptions import ConfigError, RecordsError
from scfm_bench.records import latest_per_key, read_records
from scfm_bench.runner import RunOptions, build_plan, execute
from scfm_bench.runner.lock import LOCK_NAME, output_lock
from scfm_bench.settings import Settings
from quick_suite import REPO, cli, quick_suite

pytestmark = pytest.mark.slow


def run(suite, out, *, resume=False, **kw):
    return execute(build_plan(RunOptions(suite_dir=suite, **kw)), Settings(), output_dir=out, resume=resume)


def values(out) -> dict:
    return {(*r.cell, r.metric): (r.status, r.value) for r in latest_per_key(read_records(out))}


def assert_complete_once(out, reference: dict) -> None:
    """Every (cell, metric) recorded exactly once over all runs, and equal to the clean run's."""
    counts = Counter((*r.cell, r.metric) for r in read_records(out))
    assert max(counts.values()) == 1, [k for k, n in counts.items() if n > 1]
    assert values(out) == reference
    assert not list(Path(out).rglob(".*.tmp*")) and not (Path(out) / LOCK_NAME).exists()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("ref")
    suite = quick_suite(root / "suite", seeds=(0, 1))
    assert run(suite, root / "out").exit_code == 0
    return values(root / "out")


_KILLER = """
import os, signal, sys
from scfm_bench.runner import RunOptions, build_plan, execute, local
from scfm_bench.settings import Settings
from scfm_bench.tasks.batch_integration import BatchIntegration

calls = []
def killing(f):
    def wrapper(*a, **k):
        calls.append(1)
        if len(calls) == 3:  # the third embedding / scoring: two cells are already written
            os.kill(os.getpid(), signal.SIGKILL)
        return f(*a, **k)
    return wrapper
if sys.argv[3] == "embed":
    local.embed = killing(local.embed)
else:
    BatchIntegration.score = staticmethod(killing(BatchIntegration.score))
execute(build_plan(RunOptions(suite_dir=sys.argv[1])), Settings(), output_dir=sys.argv[2])
"""


@pytest.mark.parametrize("where", ["embed", "metric"])
def test_kill_9_then_resume(tmp_path, suite, reference, where):
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, "-c", _KILLER, str(suite), str(out), where], env={**os.environ, "PYTHONPATH": str(REPO)},
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == -signal.SIGKILL, p.stderr
    assert len({r.cell for r in read_records(out)}) == 2  # whole cells only; the lock of the dead run is left behind
    assert (out / LOCK_NAME).exists()
    s = run(suite, out, resume=True)  # takes over the dead process's lock
    assert len(s.resumed) == 2 and len({r.cell for r in s.records}) == 2
    assert_complete_once(out, reference)


def test_unexpected_exceptions_become_failed_cells_and_resume_reruns_them(tmp_path, suite, reference, monkeypatch):
    from scfm_bench.runner import local
    from scfm_bench.tasks.batch_integration import BatchIntegration

    out = tmp_path / "out"
    embed = local.embed

    def flaky_embed(adapter, *a, **k):
        if adapter.key == "random":
            raise RuntimeError("node lost")
        return embed(adapter, *a, **k)

    run_task = BatchIntegration.run

    def flaky_run(self, data, embedding, *, params, seed, suite, **shared):
        if seed == 1:
            raise ZeroDivisionError("division by zero")
        return run_task(self, data, embedding, params=params, seed=seed, suite=suite, **shared)

    monkeypatch.setattr(local, "embed", flaky_embed)
    monkeypatch.setattr(BatchIntegration, "run", flaky_run)
    s = run(suite, out)
    assert s.exit_code == 1
    whole = {(r.model, r.seed): r.reason for r in s.records if r.metric == "*"}
    assert whole == {("random", 0): "RuntimeError: node lost", ("random", 1): "RuntimeError: node lost",
                     ("pca", 1): "ZeroDivisionError: division by zero"}
    assert {r.status for r in s.records if (r.model, r.seed) == ("pca", 0)} == {"ok"}
    monkeypatch.undo()
    again = run(suite, out, resume=True)  # the failed cells run again, the ok one does not
    assert [(c.model, c.seed) for c in again.resumed] == [("pca", 0)] and again.exit_code == 0
    assert values(out) == reference  # the newer successes supersede the whole-cell failures


def test_non_finite_or_out_of_range_values_are_failed_records(tmp_path, monkeypatch):
    from scfm_bench.metrics import Outcome
    from scfm_bench.tasks.batch_integration import BatchIntegration

    suite = quick_suite(tmp_path / "suite", models=("pca",))
    monkeypatch.setattr(BatchIntegration, "score", staticmethod(lambda suite, inputs: [
        Outcome("asw_label", "bio", True, float("nan")), Outcome("asw_batch", "batch", True, 1.5),
        Outcome("nmi_kmeans", "bio", True, 0.5)]))
    s = run(suite, tmp_path / "out")
    got = {r.metric: (r.status, r.value, r.reason) for r in read_records(tmp_path / "out")}
    assert got["asw_label"] == ("failed", None, "asw_label: value nan is not a finite number")
    assert got["asw_batch"][:2] == ("failed", None) and "outside the declared range [0.0, 1.0]" in got["asw_batch"][2]
    assert got["nmi_kmeans"] == ("ok", 0.5, None) and s.exit_code == 1


def test_flipped_bytes_in_a_cached_embedding_are_detected_and_recomputed(tmp_path, reference, caplog):
    suite = quick_suite(tmp_path / "suite", seeds=(0, 1))
    run(suite, tmp_path / "a")
    entries = sorted(Settings().embeddings_dir.glob("*.npy"))
    assert len(entries) == 4
    raw = bytearray(entries[0].read_bytes())
    raw[-8:] = bytes(b ^ 0xFF for b in raw[-8:])
    entries[0].write_bytes(bytes(raw))
    s = run(suite, tmp_path / "b")
    assert sum(not r.timings.embedding_cached for r in s.records if r.metric == "asw_label") == 1
    assert "corrupt (sha256 mismatch); recomputing it" in caplog.text
    assert values(tmp_path / "b") == reference


def test_another_batch_key_re_embeds_the_same_reuses(tmp_path):
    from scfm_bench.data.synthetic import synthetic

    ad = synthetic(n_cells=300, n_genes=200, n_batches=3, n_cell_types=4, seed=0)
    ad.obs["batch2"] = np.where(np.arange(ad.n_obs) % 2, "x", "y")
    h5ad = tmp_path / "two_batch_keys.h5ad"
    ad.write_h5ad(h5ad)
    suite = quick_suite(tmp_path / "suite", models=("harmony",))

    def cached(batch_key, out):
        s = run(suite, tmp_path / out, datasets=[str(h5ad)], label_key="cell_type", batch_key=batch_key)
        assert s.exit_code == 0
        return {r.timings.embedding_cached for r in s.records}, {r.params["input_key"] for r in s.records}

    assert cached("batch", "a")[0] == {False}
    assert cached("batch", "b")[0] == {True}
    other, key2 = cached("batch2", "c")
    assert other == {False}
    # --resume does not take the batch-key run's records for the batch2 ones
    s = run(suite, tmp_path / "a", resume=True, datasets=[str(h5ad)], label_key="cell_type", batch_key="batch2")
    assert not s.resumed and {r.params["input_key"] for r in s.records} == key2


def test_a_second_run_on_a_locked_folder_names_the_holder(tmp_path, suite):
    out = tmp_path / "out"
    holder = subprocess.Popen(["sleep", "60"])  # a live process on this host holds the folder
    try:
        out.mkdir()
        (out / LOCK_NAME).write_text(json.dumps({"host": socket.gethostname(), "pid": holder.pid, "since": "t"}))
        with pytest.raises(ConfigError, match=f"in use by another scfm-bench run \\(host {socket.gethostname()}, "
                                              f"PID {holder.pid}") as e:
            run(suite, out)
        assert e.value.exit_code == 2 and not (out / "runs").exists()
    finally:
        holder.kill()
        holder.wait()
    with output_lock(out):  # ours, now the holder is gone (stale lock taken over)
        assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()
        with pytest.raises(ConfigError, match=f"PID {os.getpid()}"):
            run(suite, out)
    assert not (out / LOCK_NAME).exists()


@pytest.mark.parametrize("err", [errno.EROFS, errno.ENOSPC])
def test_unwritable_output_folder_exit_2_no_partial_records(tmp_path, suite, monkeypatch, err):
    from scfm_bench import records

    out = tmp_path / "out"
    write = records.atomic_write_text

    def failing(path, text):
        if Path(path).parent.name == "records":
            raise OSError(err, os.strerror(err))
        write(path, text)

    monkeypatch.setattr(records, "atomic_write_text", failing)
    with pytest.raises(ConfigError, match=f"output folder .* is not writable \\({os.strerror(err)}\\)") as e:
        run(suite, out)
    assert e.value.exit_code == 2
    with pytest.raises(RecordsError, match="No records.jsonl"):
        read_records(out)
    assert not (out / LOCK_NAME).exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; covered by the EROFS case above")
def test_read_only_output_folder(tmp_path, suite):
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    try:
        r = cli("run", "--suite-dir", suite, "-o", out)
    finally:
        out.chmod(0o755)
    assert r.returncode == 2 and "is not writable" in r.stderr and not list(out.iterdir())


def test_progress_line_names_each_cell(tmp_path, suite, monkeypatch):
    from contextlib import contextmanager

    from scfm_bench.progress import RunProgress
    from scfm_bench.runner import local

    lines, done = [], []

    @contextmanager
    def recording(total):
        yield RunProgress(lambda n=1: done.append(n), lines.append, total)

    monkeypatch.setattr(local, "run_progress", recording)
    run(suite, tmp_path / "out")
    assert lines[0] == "cell 1/4 · batch_integration · tiny · pca · seed 0"
    assert lines[-1] == "cell 4/4 · batch_integration · tiny · random · seed 1" and sum(done) == 4


def test_sigterm_keeps_records_then_resume_completes_then_nothing_left(tmp_path, reference):
    suite = quick_suite(tmp_path / "suite", seeds=(0, 1))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    p = subprocess.Popen([sys.executable, "-m", "scfm_bench", "run", "--suite-dir", str(suite), "-o", str(out)],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not list(out.glob("runs/*/records/*.jsonl")) and time.time() < deadline and p.poll() is None:
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    if p.returncode == 0:
        pytest.fail("the run finished before SIGTERM arrived; nothing was tested")
    assert p.returncode == 130 and "interrupted — records so far kept; resume with --resume" in err
    assert not (out / LOCK_NAME).exists()
    r = cli("run", "--suite-dir", suite, "-o", out, "--resume")
    assert r.returncode == 0, r.stderr
    assert_complete_once(out, reference)
    n_runs = len(list((out / "runs").iterdir()))
    r = cli("run", "--suite-dir", suite, "-o", out, "--resume")
    assert r.returncode == 0 and "nothing left to run: all 4 cells have records" in r.stderr
    assert "pca" in r.stdout and "random" in r.stdout  # the merged leaderboard
    assert len(list((out / "runs").iterdir())) == n_runs


def test_report_reads_past_a_torn_line(tmp_path):
    from scfm_bench.records import MetricResult

    f = tmp_path / "runs" / "r1" / "records.jsonl"
    f.parent.mkdir(parents=True)
    rec = MetricResult(run_id="r1", task="t", dataset="d", model="pca", seed=0, metric="x", value=0.5, params={"primary": "x"})
    f.write_text(rec.model_dump_json() + "\n" + rec.model_copy(update={"model": "hvg"}).model_dump_json()[:50])
    r = cli("report", tmp_path)
    assert r.returncode == 0, r.stderr
    assert "records.jsonl:2: skipped a line that is not valid JSON" in r.stderr and "pca" in r.stdout


def test_job_functions_in_order_equal_the_local_run(tmp_path, suite, reference):
    """The Slurm executor's job specs, serialised and run one by one in this process (no Slurm)."""
    from scfm_bench.runner.jobs import JobSpec, make_jobs, run_job

    opts = RunOptions(suite_dir=suite)
    first, second = make_jobs(build_plan(opts), opts, Settings(), output_dir=tmp_path / "out", run_id="r1")
    assert [s.kind for s in first] == ["embedding"] * 4 and [s.kind for s in second] == ["evaluation"] * 4
    for spec in first + second:
        assert run_job(JobSpec.from_dict(json.loads(json.dumps(spec.to_dict()))))["job"] == spec.name
    assert values(tmp_path / "out") == reference
    assert len(list(Settings().cache_dir.glob("preprocessed/*.h5ad"))) == 1  # preprocessed once, shared by the jobs
