"""UCE 4x1,280 embedding throughput on CPU with random weights: cells/s, tokens/s and peak RAM for the
authors' float mask and the bool mask, each with length-bucketed (token budget) and plain batching, in
the same run.

The checkpoint is written in the authors' layout at the real sizes (token dim 5,120, d_model 1,280,
20 heads, FFN 5,120, 4 layers, decoder 1,024 -> 1,280, 1,536 positions) except the token table, which
holds only the dataset's genes, the 4 special rows and the 1,895 chromosome rows (the released
145,469 x 5,120 table is 3 GB and only read by lookup, so it changes memory, not speed). Data: a
seeded subsample of the default dataset (pbmc68k_semisynthetic) with genes spread over 24 chromosomes.

Run: .venv/bin/python benchmarks/bench_uce.py [--cells 8] [--repeats 1] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path


def write_uce(folder: Path, genes: list[str], *, layers: int = 4) -> None:
    import pandas as pd
    import torch

    from scfm_bench.adapters.uce import PROTEIN_EMBEDDINGS, WEIGHTS, build_module

    (folder / "protein_embeddings").mkdir(parents=True)
    shapes = {"n_tokens": 4 + len(genes) + 1895, "token_dim": 5120, "d_model": 1280, "d_hid": 5120, "n_layers": layers,
              "max_len": 1536, "decoder_hidden": 1024, "output_dim": 1280}
    torch.save(build_module(shapes, 20).state_dict(), folder / WEIGHTS[layers])
    torch.save({g.upper(): torch.zeros(1) for g in genes}, folder / PROTEIN_EMBEDDINGS)  # only the key order is read
    chroms = [str(c) for c in range(1, 23)] + ["X", "Y"]
    pd.DataFrame({"species": "human", "chromosome": [chroms[i % 24] for i in range(len(genes))],
                  "gene_symbol": [g.upper() for g in genes], "start": range(len(genes))}).to_csv(folder / "species_chrom.csv", index=False)
    (folder / "species_offsets.pkl").write_bytes(pickle.dumps({"human": 4}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=8)
    a = ap.parse_args()

    import numpy as np
    import torch

    from scfm_bench.adapters.uce import UCE
    from scfm_bench.config import load_suite, packaged_suite_dir
    from scfm_bench.data import load_dataset
    from scfm_bench.embed import PeakMemory
    from scfm_bench.embed.engine import forward_context, run_batches
    from scfm_bench.progress import set_enabled
    from scfm_bench.settings import Settings

    set_enabled(False)
    suite = load_suite(packaged_suite_dir())
    ds = load_dataset("pbmc68k_semisynthetic", suite.catalogue.datasets["pbmc68k_semisynthetic"], Settings(), suite_root=suite.root)
    adata = ds.adata[np.sort(np.random.default_rng(0).choice(ds.adata.n_obs, a.cells, replace=False))].copy()
    print(f"# {adata.n_obs} cells x {adata.n_vars} genes, torch {torch.__version__}, {torch.get_num_threads()} threads",
          file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "uce"
        write_uce(folder, list(adata.var_names))
        for mask in ("float", "bool"):
            model = UCE({"checkpoint": str(folder), "mask": mask}, seed=0)
            model.load("cpu")
            t0 = time.perf_counter()
            prep = model.prepare(adata)
            prep_s = time.perf_counter() - t0
            tokens = np.array([len(t) for t, _ in prep.dataset])
            times: dict[str, list[float]] = {"bucketed": [], "plain": []}
            peak: dict[str, float] = {}
            outputs = {}
            for _ in range(a.repeats):
                for mode in times:
                    with PeakMemory() as pm, forward_context("cpu"):
                        t0 = time.perf_counter()
                        outputs[mode] = run_batches(model, prep, a.batch_size, token_budget=model.token_budget,
                                                    bucketed=mode == "bucketed")
                        times[mode].append(time.perf_counter() - t0)
                    peak[mode] = max(peak.get(mode, 0.0), pm.peak_ram_mb)
            med = {m: statistics.median(t) for m, t in times.items()}
            for mode in times:
                print(json.dumps({
                    "benchmark": f"uce 4x1280 {mask} mask {mode}", "median_s": round(med[mode], 3),
                    "runs_s": [round(t, 3) for t in times[mode]], "cells_per_s": round(len(tokens) / med[mode], 3),
                    "tokens_per_s": round(int(tokens.sum()) / med[mode], 1), "peak_ram_mb": round(peak[mode], 1),
                    "prepare_s": round(prep_s, 3), "tokens_per_cell": {"min": int(tokens.min()), "max": int(tokens.max())},
                    **({"speedup_vs_plain": round(med["plain"] / med["bucketed"], 2),
                        "max_abs_diff_vs_plain": float(np.abs(outputs["bucketed"] - outputs["plain"]).max())}
                       if mode == "bucketed" else {}),
                }), flush=True)
            del model


if __name__ == "__main__":
    main()
