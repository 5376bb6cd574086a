"""Fine-tuning throughput and peak memory per mode (annotation_finetune): head, LoRA and full
fine-tuning of scGPT and Geneformer V1 (random weights in their on-disk formats, written by
bench_scfm's writers), against the MLP head on PCA in the same run; fp32 vs bf16 autocast on CUDA.

Each row runs the task itself (``run_direct``: tokenising, training ``--epochs`` epochs without early
stopping, predicting the test fold) on seeded skewed counts (bench_scfm's 10x-like genes per cell)
with 4 random cell types. cells/s = training cells x epochs / training seconds (head mode includes
computing the frozen cell vectors once); peak memory is torch.cuda.max_memory_allocated on a GPU, the
process RSS on the CPU. ``ratio_to_head``: training seconds relative to the same model's head mode.

Sizes: ``--size tiny`` (CPU smoke: scGPT 2x32, Geneformer 2x64) or ``real`` (scGPT whole-human 12x512
with a 60,697-token vocabulary; Geneformer V1 6x256).

Run: .venv/bin/python benchmarks/bench_finetune.py [--size tiny|real] [--cells 64] [--genes 500] [--epochs 1] [--batch-size 16]
     [--models scgpt,geneformer] [--modes head,lora,full] [--device cuda] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from bench_scfm import skewed_counts, write_geneformer, write_scgpt

SIZES = {  # (scGPT (embsize, heads, d_hid, layers), vocab), Geneformer V1 (hidden, layers, heads, FFN)
    "tiny": (((32, 2, 64, 2), 6_000), (64, 2, 2, 128)),
    "real": (((512, 8, 512, 12), 60_694), None),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", choices=list(SIZES), default="tiny")
    ap.add_argument("--cells", type=int, default=64)
    ap.add_argument("--genes", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--models", default="scgpt,geneformer")
    ap.add_argument("--modes", default="head,lora,full")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--repeats", type=int, default=1)
    a = ap.parse_args()

    import numpy as np
    import torch

    from scfm_bench.config import load_suite, packaged_suite_dir
    from scfm_bench.config.schemas import DatasetEntry
    from scfm_bench.embed.train import TrainBudget
    from scfm_bench.progress import set_enabled
    from scfm_bench.registry import ADAPTERS
    from scfm_bench.tasks.annotation_finetune import AnnotationFinetune, FinetuneParams

    set_enabled(False)
    adata = skewed_counts(a.cells, a.genes)
    rng = np.random.default_rng(0)
    adata.obs["cell_type"] = rng.choice([f"type{i}" for i in range(4)], a.cells)
    adata.obs["batch"] = "b0"
    genes = list(adata.var_names)
    entry = DatasetEntry(source="file", path="bench.h5ad", fields={"label": "cell_type"})
    suite = load_suite(packaged_suite_dir()).metric_suite("annotation")
    task = AnnotationFinetune()
    (scgpt_dims, vocab), gf_dims = SIZES[a.size]
    precisions = ["fp32", "auto"] if a.device.startswith("cuda") else ["fp32"]
    print(f"# {adata.n_obs} cells x {adata.n_vars} genes, torch {torch.__version__}, {torch.get_num_threads()} threads",
          file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        write_scgpt(Path(tmp) / "scgpt", genes, dims=scgpt_dims, vocab_size=vocab)
        write_geneformer(Path(tmp) / "geneformer", genes, v2=False, dims=gf_dims)  # maps the symbols onto its Ensembl ids
        adapters = {"pca": ADAPTERS.get("pca")()}
        for key in a.models.split(","):
            adapters[key] = ADAPTERS.get(key)({"checkpoint": str(Path(tmp) / key), **({"use_hvg": False} if key == "scgpt" else {})})
        for ad in adapters.values():
            ad.load(a.device)
        data = None
        for prec in precisions:
            params = FinetuneParams(budget=TrainBudget(epochs=a.epochs, patience=a.epochs, batch_size=a.batch_size),
                                    precision=prec, n_top_genes=min(2000, a.genes))
            data = data or task.load(adata, name="bench", entry=entry, params=params)
            models = ["mlp_pca"] + [f"{mode}_{key}" for key in a.models.split(",") for mode in a.modes.split(",")]
            runs: dict[str, list[dict]] = {m: [] for m in models}
            for _ in range(a.repeats):
                res = task.run_direct(adata, name="bench", entry=entry, models=models, params=params, seed=0, suite=suite,
                                      embedders={k.partition("_")[2]: adapters[k.partition("_")[2]] for k in models},
                                      prepared=data)
                for m in models:
                    out = res.outcomes[m][0]
                    if out.status != "ok":
                        raise SystemExit(f"{m}: {out.status}: {out.reason}")
                    runs[m].append(out.params)
            for m in models:
                p = runs[m][0]
                train_s = statistics.median(r["train_s"] for r in runs[m])
                head = f"head_{m.partition('_')[2]}"
                row = {"benchmark": f"finetune {m} {a.size} {p['precision']} {a.device}", "mode": p["mode"],
                       "train_s": round(train_s, 3), "runs_train_s": [round(r["train_s"], 3) for r in runs[m]],
                       "cells_per_s": round(p["n_train_cells"] * p["epochs_run"] / train_s, 1),
                       "peak_memory_mb": round(max(r["peak_memory_mb"] for r in runs[m]), 1),
                       "peak_memory_source": p["peak_memory_source"], "trainable_params": p["trainable_params"],
                       "total_params": p["total_params"], "batch_size_final": p["batch_size_final"], "epochs": p["epochs_run"]}
                if head in runs and head != m:
                    row["ratio_to_head"] = round(train_s / statistics.median(r["train_s"] for r in runs[head]), 2)
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
