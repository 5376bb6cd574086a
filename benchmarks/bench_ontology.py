"""Ontology benchmarks: RWR + DCA on the full Cell Ontology (ours vs the dense reference iteration +
ARPACK SVD, same run, values compared); scgraph_ontorwr / lcad / rogi time and peak memory at 10k and
100k cells; and a sweep of ROGI's subsample cap (time, peak memory, and how far the value moves from
the largest cap's, over seeds) on the largest cell count.

Usage: python benchmarks/bench_ontology.py [--repeats 3] [--cells 10000 100000] [--rogi-caps 2000 5000
10000 20000] [--rogi-seeds 3] [--no-rwr] [--blas-threads N]  (BLAS threads for every part; on a shared
machine 1 gives steadier timings). Empty --cells / --rogi-caps skip those parts. Each metric timing
runs in a forked child so its peak RSS (over the child's start) is its own."""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import report  # noqa: E402


def timed(fn, repeats):
    out, times = None, []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, times


def _rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20


def _child(fn, conn) -> None:
    start = _rss_mb()
    t0 = time.perf_counter()
    value = fn()
    elapsed = time.perf_counter() - t0
    conn.send((elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - start, value))


def isolated(fn) -> tuple[float, float, object]:
    """(seconds, peak RSS growth in MB, return value) of fn() run in a forked child."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_child, args=(fn, child))
    proc.start()
    out = parent.recv()
    proc.join()
    return out


def bench_rwr(repeats: int) -> None:
    from scipy.spatial.distance import pdist

    from scfm_bench.ontology import load_ontology
    from scfm_bench.ontology.rwr import adjacency, dca, dca_svds, rwr, rwr_dense

    _, W = adjacency(load_ontology())
    fast, t_fast = timed(lambda: dca(rwr(W), 256), repeats)
    ref, t_ref = timed(lambda: dca_svds(rwr_dense(W), 256), 1)
    q_diff = float(np.abs(rwr(W).profiles() - rwr_dense(W)).max())
    sample = np.random.default_rng(0).choice(len(fast), 400, replace=False)
    d_diff = float(np.abs(pdist(fast[sample]) - pdist(ref[sample])).max())
    row = report("rwr_dca_full_cl", t_fast, t_ref, "dense_reference")
    print(f"  max |Q_fast - Q_ref| = {q_diff:.2e}; max distance difference (400 nodes) = {d_diff:.2e}")
    assert q_diff < 1e-6 and d_diff < 1e-6, row


TYPES = ["CL:0000624", "CL:0000625", "CL:0000236", "CL:0000576", "CL:0000623", "CL:0000451", "CL:0000798",
         "CL:0000815", "CL:0000895", "CL:0000900"]


def synthetic(n: int):
    """50-d embedding of n cells over 10 CL types (type index shifts the mean), 20 % wrong predictions, 5 folds."""
    rng = np.random.default_rng(0)
    ids = np.array(TYPES)[rng.integers(0, len(TYPES), n)]
    X = rng.normal(size=(n, 50)) + np.unique(ids, return_inverse=True)[1][:, None]
    pred = np.where(rng.random(n) < 0.2, np.array(TYPES)[rng.integers(0, len(TYPES), n)], ids)
    return X, ids, pred, rng.integers(0, 5, n)


def bench_metrics(cells: list[int], repeats: int) -> None:
    from scfm_bench.metrics.lcad import lcad
    from scfm_bench.metrics.rogi import rogi
    from scfm_bench.metrics.scgraph_ontorwr import scgraph_ontorwr
    from scfm_bench.ontology import load_ontology, node_vectors

    node_vectors(load_ontology())  # the ontology side is cached once per CL version; time the per-embedding part
    for n in [500, *cells]:  # 500: imports and caches warmed in the parent, not timed
        X, ids, pred, folds = synthetic(n)
        for name, fn in (("scgraph_ontorwr", lambda: scgraph_ontorwr.fn(X, ids)),
                         ("lcad", lambda: lcad.fn(ids, pred, folds)),
                         ("rogi", lambda: rogi.fn(X, ids))):
            if n == 500:
                fn()
                continue
            runs = [isolated(fn) for _ in range(repeats)]
            report(f"{name}_{n}_cells", [t for t, _, _ in runs])
            print(f"  peak RSS growth {max(m for _, m, _ in runs):.0f} MB")


def sweep_rogi_cap(n: int, caps: list[int], seeds: int) -> None:
    from scfm_bench.metrics.rogi import rogi

    X, ids, _, _ = synthetic(n)
    rows = {}
    for cap in sorted(caps):
        runs = [isolated(lambda s=s: rogi.fn(X, ids, max_cells=cap, seed=s).values) for s in range(seeds)]
        rows[cap] = runs
        report(f"rogi_cap_{cap}_of_{n}_cells", [t for t, _, _ in runs])
    top = np.mean([v for *_, v in rows[max(caps)]])
    print(f"ROGI cap sweep on {n} cells, {seeds} subsample seeds (value: mean ± sd over seeds):")
    for cap, runs in rows.items():
        values = np.array([v for *_, v in runs])
        print(f"  cap {cap:>6}: median {statistics.median(t for t, _, _ in runs):6.2f} s, "
              f"peak RSS growth {max(m for _, m, _ in runs):6.0f} MB, value {values.mean():.4f} ± {values.std():.4f}, "
              f"mean - mean at cap {max(caps)}: {values.mean() - top:+.4f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cells", type=int, nargs="*", default=[10_000, 100_000])
    ap.add_argument("--rogi-caps", type=int, nargs="*", default=[2_000, 5_000, 10_000, 20_000])
    ap.add_argument("--rogi-seeds", type=int, default=3)
    ap.add_argument("--no-rwr", action="store_true", help="skip the RWR + DCA comparison")
    ap.add_argument("--blas-threads", type=int, default=None)
    args = ap.parse_args()
    from threadpoolctl import threadpool_limits

    threadpool_limits(args.blas_threads)
    if not args.no_rwr:
        bench_rwr(args.repeats)
    bench_metrics(args.cells, args.repeats)
    if args.rogi_caps:
        sweep_rogi_cap(max(args.cells, default=100_000), args.rogi_caps, args.rogi_seeds)


if __name__ == "__main__":
    main()
