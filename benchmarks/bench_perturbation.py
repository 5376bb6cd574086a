"""Perturbation task at Norman size: ~90k cells x 5k genes (sparse), ~240 conditions, S1 + S2 with all
baselines and three embeddings (pca, random, a synthetic oracle file).

Generation and the task run in separate processes, like a real run reading a screen from disk: one
process writes the synthetic screen to an .h5ad, a fresh one reads it and runs S1 + S2. Each prints its
wall time and peak RSS; the goal is the task's (< 300 s, < 8 GB on 2 cores).

    python benchmarks/bench_perturbation.py [--scale 1.0]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate(out: Path, scale: float) -> dict:
    from scfm_bench.data.perturb_sim import perturbation_synthetic, synthetic_gene_embeddings

    t0 = time.perf_counter()
    ad = perturbation_synthetic(n_genes=5000, n_single=int(105 * scale), n_double=int(131 * scale),
                                cells_per_condition=350, n_control=int(7000 * scale), seed=0)
    genes, emb = synthetic_gene_embeddings(ad, sigma=0.5, seed=1)
    np.savez(out / "oracle.npz", genes=np.array(genes), embeddings=emb)
    ad.write_h5ad(out / "screen.h5ad")
    return {"stage": "generate", "wall_s": time.perf_counter() - t0, "peak_rss_mb": _peak_mb(),
            "cells": ad.n_obs, "genes": ad.n_vars, "conditions": ad.obs["perturbation"].nunique() - 1, "nnz": int(ad.X.nnz)}


def task(out: Path) -> dict:
    import anndata

    from scfm_bench.config import load_suite, packaged_suite_dir
    from scfm_bench.config.schemas import DatasetEntry, PerturbationFields
    from scfm_bench.tasks.perturbation import Perturbation, PerturbationParams

    t0 = time.perf_counter()
    ad = anndata.read_h5ad(out / "screen.h5ad")
    t_read = time.perf_counter() - t0
    suite = load_suite(packaged_suite_dir()).metric_suites["perturbation"]
    entry = DatasetEntry(source="file", path="screen.h5ad", perturbation=PerturbationFields())
    probes = [f"{k}_{e}" for k in ("lin", "ridge", "knn") for e in ("pca", "random", "oracle") if f"{k}_{e}" != "lin_pca"]
    models = ["no_change", "mean", "additive", "additive_ref", "lin_pca", *probes, "noise_ceiling", "replicate_ceiling"]
    task = Perturbation()
    pdata = task.load(ad, name="norman_size", entry=entry, params=PerturbationParams())  # loaded once, as the runner does
    for split in ("single_unseen", "double_seen2"):
        task.run_direct(ad, name="norman_size", entry=entry, models=models, seed=0, suite=suite, prepared=pdata,
                        params=PerturbationParams(split=split, embeddings={"oracle": str(out / "oracle.npz")}))
    return {"stage": "task", "wall_s": time.perf_counter() - t0, "read_s": t_read, "peak_rss_mb": _peak_mb()}


def _stage(*args: str) -> dict:
    res = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the Norman size (cells and conditions)")
    ap.add_argument("--stage", choices=("generate", "task"), help=argparse.SUPPRESS)
    ap.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stage:
        print(json.dumps(generate(args.dir, args.scale) if args.stage == "generate" else task(args.dir)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        gen = _stage("--stage", "generate", "--dir", tmp, "--scale", str(args.scale))
        run = _stage("--stage", "task", "--dir", tmp)
    print(f"cells={gen['cells']} genes={gen['genes']} conditions={gen['conditions']} nnz={gen['nnz']}")
    print(f"generate (incl. writing the .h5ad): wall_s={gen['wall_s']:.1f} peak_rss_mb={gen['peak_rss_mb']:.0f}")
    print(f"task S1+S2 (incl. reading the .h5ad, {run['read_s']:.1f} s): wall_s={run['wall_s']:.1f} "
          f"peak_rss_mb={run['peak_rss_mb']:.0f} (goal: < 300 s, < 8192 MB)")


if __name__ == "__main__":
    main()
