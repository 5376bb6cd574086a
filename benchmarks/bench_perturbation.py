"""Perturbation task at Norman size: ~90k cells x 5k genes (sparse), ~240 conditions, S1 + S2 with all
baselines and three embeddings (pca, random, a synthetic oracle file). Prints wall time and peak RSS.

    python benchmarks/bench_perturbation.py [--scale 1.0]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the Norman size (cells and conditions)")
    args = ap.parse_args()
    from scfm_bench.config import load_suite, packaged_suite_dir
    from scfm_bench.config.schemas import DatasetEntry, PerturbationFields
    from scfm_bench.data.perturb_sim import perturbation_synthetic, synthetic_gene_embeddings
    from scfm_bench.tasks.perturbation import Perturbation, PerturbationParams

    s = args.scale
    t0 = time.perf_counter()
    ad = perturbation_synthetic(n_genes=5000, n_single=int(105 * s), n_double=int(131 * s), cells_per_condition=350,
                                n_control=int(7000 * s), seed=0)
    t_gen = time.perf_counter() - t0
    suite = load_suite(packaged_suite_dir()).metric_suites["perturbation"]
    entry = DatasetEntry(source="builtin", builder="perturbation_synthetic", perturbation=PerturbationFields())
    with tempfile.TemporaryDirectory() as tmp:
        genes, emb = synthetic_gene_embeddings(ad, sigma=0.5, seed=1)
        path = Path(tmp) / "oracle.npz"
        np.savez(path, genes=np.array(genes), embeddings=emb)
        probes = [f"{k}_{e}" for k in ("lin", "ridge", "knn") for e in ("pca", "random", "oracle") if f"{k}_{e}" != "lin_pca"]
        models = ["no_change", "mean", "additive", "additive_ref", "lin_pca", *probes, "noise_ceiling"]  # lin_pca is the baseline
        t1 = time.perf_counter()
        for split in ("single_unseen", "double_seen2"):
            Perturbation().run_direct(ad, name="norman_size", entry=entry, models=models, seed=0, suite=suite,
                                      params=PerturbationParams(split=split, embeddings={"oracle": str(path)}))
        t_task = time.perf_counter() - t1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"cells={ad.n_obs} genes={ad.n_vars} conditions={ad.obs['perturbation'].nunique() - 1} nnz={ad.X.nnz}")
    print(f"generate_s={t_gen:.1f} task_s(S1+S2)={t_task:.1f} peak_rss_mb={peak:.0f} (goal: task < 300 s, < 8192 MB)")


if __name__ == "__main__":
    main()
