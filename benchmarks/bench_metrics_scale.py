"""Metric engine at scale: scfm-bench's batch-integration suite vs the scib-metrics Benchmarker.

Each (engine, size) runs in its own subprocess (cold: imports, compiles, kNN) so its peak RSS is its
own. Printed as JSON lines: per-embedding total and per-metric seconds, peak RSS, the values, the
largest |ours - Benchmarker| over metrics and embeddings, and the ratio of medians.

    python benchmarks/bench_metrics_scale.py                       # 10k and 60k vs Benchmarker, kang row
    python benchmarks/bench_metrics_scale.py --sizes 10000 --alone 200000
    python benchmarks/bench_metrics_scale.py --sizes 10000 --no-kang --benchmarker-knn exact   # values equal
    python benchmarks/bench_metrics_scale.py --device cuda --knn-only --alone 60000 200000 1000000   # GPU kNN
    python benchmarks/bench_metrics_scale.py --knn-compare --sizes --alone 200000 1000000   # kNN backends
    python benchmarks/bench_metrics_scale.py --leiden-compare --sizes 20000   # Leiden sweep vs scib-metrics

``--alone`` sizes run both suites (batch integration and zero-shot, Leiden sweep included) under the
default large-n policy (exact kNN up to 200k cells, faiss HNSW above; quadratic metrics on the
declared 100,000-cell subsample above 100k), one metric at a time so each gets its seconds and the
process's peak RSS after it; the scaling exponent is fitted per metric over all sizes run.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
KANG = ROOT.parent / "shared" / "data" / "kang_ctrl_8donors_12k.h5ad"
SCIB_IDS = ["isolated_labels", "kmeans_nmi", "kmeans_ari", "silhouette_label", "clisi", "bras", "ilisi", "kbet",
            "graph_connectivity", "pcr_comparison"]
COLUMN = {"isolated_labels": "Isolated labels", "kmeans_nmi": "KMeans NMI", "kmeans_ari": "KMeans ARI",
          "silhouette_label": "Silhouette label", "clisi": "cLISI", "bras": "BRAS", "ilisi": "iLISI", "kbet": "KBET",
          "graph_connectivity": "Graph connectivity", "pcr_comparison": "PCR comparison",
          "leiden_nmi": "Leiden NMI", "leiden_ari": "Leiden ARI"}


def synthetic(n: int, n_emb: int = 3, dim: int = 50, seed: int = 0):
    """n cells, 10 labels x 4 batches; embeddings differ in batch effect (0.2, 1, 3) and noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    batch = rng.integers(0, 4, n)
    centres = rng.normal(scale=3.0, size=(10, dim))
    shifts = rng.normal(size=(4, dim))
    embs = [(centres[labels] + shifts[batch] * s + rng.normal(size=(n, dim))).astype(np.float32)
            for s in (0.2, 1.0, 3.0)[:n_emb]]
    X_pre = (centres[labels] + shifts[batch] * 3 + rng.normal(size=(n, dim))).astype(np.float32)
    return embs, labels.astype(str), batch.astype(str), X_pre


def kang():
    """PCA and Harmony of kang_ctrl_8donors_12k, as scfm-bench's pca/harmony baselines compute them."""
    import anndata as ad
    import harmonypy

    from scfm_bench.data import preprocess

    a = preprocess(ad.read_h5ad(KANG), seed=0)
    pca = np.asarray(a.obsm["X_pca"], dtype=np.float32)
    batch = a.obs["batch"].astype(str).to_numpy()
    import pandas as pd

    Z = np.asarray(harmonypy.run_harmony(pca.astype(np.float64), pd.DataFrame({"batch": batch}), ["batch"],
                                         random_state=0, verbose=False).Z_corr)
    harmony = (Z if Z.shape[0] == a.n_obs else Z.T).astype(np.float32)
    return [pca, harmony], a.obs["cell_type"].astype(str).to_numpy(), batch, pca


def run_ours(embs, labels, batch, X_pre, leiden: bool) -> dict:
    import json as _json
    from types import SimpleNamespace

    from scfm_bench.config import load_suite, packaged_suite_dir
    from scfm_bench.metrics import MetricInputs, NeighborGraph, evaluate_suite

    suite = load_suite(packaged_suite_dir()).metric_suites["scib_metrics_default"]
    entries = [e for e in suite.metrics if e.id in SCIB_IDS]
    if leiden:
        zs = load_suite(packaged_suite_dir()).metric_suites["zero_shot"]
        entries += [e.model_copy(update={"id": f"leiden_{e.output}"}) for e in zs.metrics if e.metric == "nmi_ari_leiden"]
    suite = SimpleNamespace(metrics=entries)  # evaluate_suite reads only the entries
    out = []
    for X in embs:
        t0 = time.perf_counter()
        graph = NeighborGraph(X)
        inputs = MetricInputs(X=X, labels=labels, batch=batch, X_pre=X_pre, neighbors=graph)
        t = time.perf_counter()
        inputs.knn90
        knn_s = time.perf_counter() - t
        outcomes, rss = [], {}
        groups: dict = {}  # one (metric, kwargs) at a time: its seconds and the peak RSS after it
        for e in suite.metrics:
            groups.setdefault((e.metric, _json.dumps(e.kwargs, sort_keys=True)), []).append(e)
        for entries in groups.values():
            outs = evaluate_suite(SimpleNamespace(metrics=entries), inputs)
            outcomes += outs
            rss.update({o.id: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 for o in outs})
        print(f"embedding {len(out) + 1}/{len(embs)}: {time.perf_counter() - t0:.1f} s (kNN {knn_s:.1f} s), peak RSS "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB", file=sys.stderr, flush=True)
        out.append({"total_s": time.perf_counter() - t0, "knn_s": knn_s,
                    "metric_s": {o.id: o.metric_s for o in outcomes}, "peak_rss_after_mb": rss,
                    "sampling": {o.id: o.params["sampling"] for o in outcomes if "sampling" in o.params},
                    "values": {o.id: o.value for o in outcomes}})
    return {"embeddings": out}


def sklearn_exact_knn(X: np.ndarray, k: int):
    """An exact neighbour computer from a library (scikit-learn brute force, as scanpy's exact search):
    with it the Benchmarker sees the same graphs as scfm-bench, so values can be compared exactly
    (its default pynndescent is approximate)."""
    from scib_metrics.nearest_neighbors import NeighborsResults
    from sklearn.neighbors import NearestNeighbors

    dist, idx = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(X).kneighbors(X)
    dist[:, 0] = 0.0  # a cell is its own first neighbour at distance 0 (scanpy zeroes the float32 ~1e-6)
    return NeighborsResults(indices=idx, distances=dist.astype(np.float32))


def run_benchmarker(embs, labels, batch, X_pre, leiden: bool, knn: str = "pynndescent") -> dict:
    import anndata as ad
    import pandas as pd
    from scib_metrics.benchmark import Benchmarker, BioConservation

    a = ad.AnnData(np.zeros((len(labels), 1), dtype=np.float32), obs=pd.DataFrame({"l": labels, "b": batch}))
    a.obs_names = [f"c{i}" for i in range(a.n_obs)]
    keys = [f"X{i}" for i in range(len(embs))]
    for k, X in zip(keys, embs):
        a.obsm[k] = X
    a.obsm["X_pre"] = X_pre
    t0 = time.perf_counter()
    bm = Benchmarker(a, batch_key="b", label_key="l", embedding_obsm_keys=keys, pre_integrated_embedding_obsm_key="X_pre",
                     bio_conservation_metrics=BioConservation(nmi_ari_cluster_labels_leiden=leiden), progress_bar=False)
    if knn == "exact":
        bm.prepare(neighbor_computer=sklearn_exact_knn)
    bm.benchmark()
    total = time.perf_counter() - t0
    res = bm.get_results(min_max_scale=False)
    inv = {v: k for k, v in COLUMN.items()}
    return {"total_s": total, "embeddings": [{"values": {inv[c]: float(res.loc[k, c]) for c in res.columns if c in inv}}
                                             for k in keys]}


def knn_only(n: int, device: str) -> dict:
    from scfm_bench.metrics._neighbors import exact_knn

    X = synthetic(n, n_emb=1)[0][0]
    exact_knn(X[:2000], 90, device=device)  # warm-up (CUDA context, kernels)
    t = time.perf_counter()
    exact_knn(X, 90, device=device)
    return {"knn_s": time.perf_counter() - t}


def knn_compare(n: int, method: str) -> dict:
    """One search of ``method`` on n cells x 50 dims (k = 90); recall@90 against the exact neighbours of
    20,000 seeded query cells (float32 brute force)."""
    import torch

    from scfm_bench.metrics._neighbors import knn

    X = synthetic(n, n_emb=1)[0][0]
    q = np.sort(np.random.default_rng(1).choice(n, min(n, 20_000), replace=False))
    Xt = torch.from_numpy(X)
    sq = (Xt * Xt).sum(1)
    truth = np.concatenate([torch.topk(torch.addmm(sq[None], Xt[q[s:s + 500]], Xt.T, alpha=-2), 90, dim=1,
                                       largest=False).indices.numpy() for s in range(0, len(q), 500)])
    row = {}
    if method == "pynndescent":  # its numba compile, paid once per process, apart from the search
        t = time.perf_counter()
        knn(X[:3000], 90, method=method)
        row["compile_s"] = time.perf_counter() - t
    t = time.perf_counter()
    idx = knn(X, 90, method=method).indices
    row["search_s"] = time.perf_counter() - t
    row["recall90"] = float(np.mean([len(np.intersect1d(a, b)) / 90 for a, b in zip(idx[q], truth)]))
    return row


def leiden_compare(n: int) -> dict:
    """The Leiden sweep on one embedding's 15-NN connectivities: scib-metrics' function (a graph per
    resolution) vs ours (metrics/_leiden.py: the graph built once) in one process and by default (the
    sweep in forked processes from 20,000 cells), same values."""
    import scib_metrics

    from scfm_bench.metrics import MetricInputs
    from scfm_bench.registry import METRICS

    embs, labels, _, _ = synthetic(n, n_emb=1)
    knn = MetricInputs(X=embs[0]).knn15
    knn.knn_graph_connectivities
    t = time.perf_counter()
    ref = {k: float(v) for k, v in scib_metrics.nmi_ari_cluster_labels_leiden(knn, labels).items()}
    scib_s = time.perf_counter() - t
    row = {"scib_metrics_s": scib_s}
    for name, jobs in (("ours_1_process", 1), ("ours", None)):  # one process, then the default (forked sweep)
        t = time.perf_counter()
        ours = METRICS.get("nmi_ari_leiden").fn(knn, labels, n_jobs=jobs)
        dt = time.perf_counter() - t
        row |= {f"{name}_s": dt, f"{name}_speedup": scib_s / dt, f"{name}_equal": ours == ref}
    return row | {"values": ours}


def child(args) -> None:
    """One measurement in this process; prints one JSON object."""
    if args.knn_only:
        row = knn_only(args.n, args.device)
    elif args.leiden_compare:
        row = leiden_compare(args.n)
    elif args.knn_compare:
        row = knn_compare(args.n, args.engine)
    else:
        embs, labels, batch, X_pre = kang() if args.n == 0 else synthetic(args.n)
        if args.engine == "ours":
            row = run_ours(embs, labels, batch, X_pre, leiden=args.n == 0 or args.n not in args.sizes)
        else:
            row = run_benchmarker(embs, labels, batch, X_pre, leiden=args.n == 0, knn=args.benchmarker_knn)
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(row, default=float), flush=True)


def measure(engine: str, n: int, extra: list[str]) -> dict:
    cmd = [sys.executable, __file__, "--child", "--engine", engine, "--n", str(n), *extra]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    row = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))[7:])
    row["wall_s"] = time.perf_counter() - t0
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="*", default=[10_000, 60_000], help="sizes run by both engines")
    p.add_argument("--alone", type=int, nargs="*", default=[], help="sizes run by scfm-bench only (200000 1000000)")
    p.add_argument("--no-kang", action="store_true", help="skip the kang_ctrl_8donors_12k PCA/Harmony row")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--device", default="cpu", help="torch device for the exact kNN (--knn-only)")
    p.add_argument("--knn-only", action="store_true", help="time only the exact kNN (e.g. on a GPU)")
    p.add_argument("--benchmarker-knn", choices=("pynndescent", "exact"), default="pynndescent",
                   help="the Benchmarker's neighbour computer: its default (approximate) or sklearn's exact search")
    p.add_argument("--knn-compare", action="store_true", help="kNN backends: seconds and recall@90 (exact up to 200k)")
    p.add_argument("--leiden-compare", action="store_true", help="the Leiden sweep: scib-metrics' function vs ours")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--engine", default="ours", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    extra = (["--knn-only", "--device", args.device] if args.knn_only
             else ["--benchmarker-knn", args.benchmarker_knn, "--sizes", *map(str, args.sizes)])
    if args.knn_compare:
        for n in args.sizes + args.alone:
            for method in ("exact", "hnsw", "pynndescent") if n <= 200_000 else ("hnsw", "pynndescent"):
                print(json.dumps({"n_cells": n, "method": method, **measure(method, n, ["--knn-compare"])}), flush=True)
        return
    if args.leiden_compare:
        for n in args.sizes + args.alone:
            print(json.dumps({"n_cells": n, **measure("ours", n, ["--leiden-compare"])}), flush=True)
        return
    if args.knn_only:
        for n in args.sizes + args.alone:
            print(json.dumps({"n_cells": n, "device": args.device, **measure("ours", n, extra)}), flush=True)
        return
    ours_times, per_metric = {}, {}
    plan = [(n, True) for n in args.sizes] + [(n, False) for n in args.alone]
    if KANG.exists() and not args.no_kang:
        plan.append((0, True))
    for n, versus in plan:
        rows = {e: [measure(e, n, extra) for _ in range(args.repeats)] for e in (("ours", "benchmarker") if versus else ("ours",))}
        med = {e: float(np.median([r["wall_s"] for r in rs])) for e, rs in rows.items()}
        out = {"n_cells": n or "kang_ctrl_8donors_12k (PCA, Harmony)", "benchmarker_knn": args.benchmarker_knn, "median_wall_s": med,
               "peak_rss_mb": {e: max(r["peak_rss_mb"] for r in rs) for e, rs in rows.items()},
               "ours_per_metric_s": {k: round(float(np.median([e["metric_s"][k] for r in rows["ours"] for e in r["embeddings"]])), 3)
                                     for k in rows["ours"][0]["embeddings"][0]["metric_s"]},
               "ours_knn_s": round(float(np.median([e["knn_s"] for r in rows["ours"] for e in r["embeddings"]])), 3),
               "ours_peak_rss_after_mb": rows["ours"][0]["embeddings"][-1]["peak_rss_after_mb"],
               "ours_sampling": rows["ours"][0]["embeddings"][0]["sampling"],
               "ours_values": [e["values"] for e in rows["ours"][0]["embeddings"]]}
        if versus:
            ref = rows["benchmarker"][0]["embeddings"]
            out["benchmarker_values"] = [e["values"] for e in ref]
            out["max_abs_diff"] = {k: max(abs(o["values"][k] - r["values"][k]) for o, r in zip(rows["ours"][0]["embeddings"], ref))
                                   for k in ref[0]["values"]}
            out["speedup"] = round(med["benchmarker"] / med["ours"], 2)
        if n:
            ours_times[n] = med["ours"]
            per_metric[n] = out["ours_per_metric_s"]
        print(json.dumps(out, default=float), flush=True)
    if len(ours_times) >= 2:
        ns = sorted(ours_times)
        slope = np.polyfit(np.log(ns), np.log([ours_times[n] for n in ns]), 1)[0]
        fit = {k: round(float(np.polyfit(np.log(ns), np.log([max(per_metric[n][k], 1e-3) for n in ns]), 1)[0]), 2)
               for k in per_metric[ns[0]] if all(k in per_metric[n] for n in ns)}
        print(json.dumps({"fitted_exponent_ours": round(float(slope), 2), "per_metric": fit, "sizes": ns}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
