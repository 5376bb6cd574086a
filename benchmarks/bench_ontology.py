"""Ontology benchmarks: RWR + DCA on the full Cell Ontology (ours vs the dense reference iteration +
ARPACK SVD, same run, values compared), and scgraph_ontorwr / lcad / rogi time and peak memory at
10k and 100k cells. Usage: python benchmarks/bench_ontology.py [--repeats 3] [--cells 10000 100000]
[--blas-threads N] (BLAS threads for both sides; on a shared machine 1 gives steadier timings)"""

from __future__ import annotations

import argparse
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cells", type=int, nargs="*", default=[10_000, 100_000])
    ap.add_argument("--blas-threads", type=int, default=None)
    args = ap.parse_args()
    from scipy.spatial.distance import pdist
    from threadpoolctl import threadpool_limits

    threadpool_limits(args.blas_threads)

    from scfm_bench.metrics.lcad import lcad
    from scfm_bench.metrics.rogi import rogi
    from scfm_bench.metrics.scgraph_ontorwr import scgraph_ontorwr
    from scfm_bench.ontology import load_ontology
    from scfm_bench.ontology.rwr import adjacency, dca, dca_svds, rwr, rwr_dense

    cl = load_ontology()
    _, W = adjacency(cl)
    fast, t_fast = timed(lambda: dca(rwr(W), 256), args.repeats)
    ref, t_ref = timed(lambda: dca_svds(rwr_dense(W), 256), 1)
    q_diff = float(np.abs(rwr(W).profiles() - rwr_dense(W)).max())
    sample = np.random.default_rng(0).choice(len(fast), 400, replace=False)
    d_diff = float(np.abs(pdist(fast[sample]) - pdist(ref[sample])).max())
    row = report("rwr_dca_full_cl", t_fast, t_ref, "dense_reference")
    print(f"  max |Q_fast - Q_ref| = {q_diff:.2e}; max distance difference (400 nodes) = {d_diff:.2e}")
    assert q_diff < 1e-6 and d_diff < 1e-6, row

    types = ["CL:0000624", "CL:0000625", "CL:0000236", "CL:0000576", "CL:0000623", "CL:0000451", "CL:0000798",
             "CL:0000815", "CL:0000895", "CL:0000900"]
    for n in args.cells:
        rng = np.random.default_rng(0)
        ids = np.array(types)[rng.integers(0, len(types), n)]
        X = rng.normal(size=(n, 50)) + np.unique(ids, return_inverse=True)[1][:, None]
        pred = np.where(rng.random(n) < 0.2, np.array(types)[rng.integers(0, len(types), n)], ids)
        folds = rng.integers(0, 5, n)
        for name, fn in (("scgraph_ontorwr", lambda: scgraph_ontorwr.fn(X, ids)),
                         ("lcad", lambda: lcad.fn(ids, pred, folds)),
                         ("rogi", lambda: rogi.fn(X, ids))):
            _, t = timed(fn, args.repeats)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            report(f"{name}_{n}_cells", t)
            print(f"  process peak RSS so far {peak:.0f} MB; median {statistics.median(t):.2f} s")


if __name__ == "__main__":
    main()
