"""scFM embedding throughput on CPU at real architecture sizes (random weights): cells/s, tokens/s and
peak RAM, with length-bucketed (token budget) vs plain padded batching in the same run.

Models: scGPT 12x512 (vocab 60,697), Geneformer V1 6x256 (vocab 25,426) and scFoundation 12x768 (19,264-gene
list, 100 bins) on the default dataset
(pbmc68k_semisynthetic), a seeded subsample of cells. Checkpoints are written to a temp folder in each
model's on-disk format, so loading goes through the adapters exactly as for real weights.

Run: .venv/bin/python benchmarks/bench_scfm.py [--cells 96] [--repeats 3] [--batch-size 32] [--models scgpt ...]
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


def write_scgpt(folder: Path, genes: list[str]) -> None:
    import torch

    from scfm_bench.adapters.scgpt import _build_module

    folder.mkdir(parents=True)
    names = genes + [f"FILLER{i}" for i in range(60_694 - len(genes))]
    vocab = {g: i for i, g in enumerate(names)} | {"<pad>": 60_694, "<cls>": 60_695, "<eoc>": 60_696}
    args = {"embsize": 512, "nheads": 8, "d_hid": 512, "nlayers": 12, "dropout": 0.2, "pad_token": "<pad>", "pad_value": -2}
    state = _build_module(len(vocab), args, 60_694).state_dict()
    torch.save({k.replace("self_attn.in_proj_", "self_attn.Wqkv."): v for k, v in state.items()}, folder / "best_model.pt")
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "args.json").write_text(json.dumps(args))


def write_geneformer_v1(folder: Path, genes: list[str]) -> None:
    from transformers import BertConfig, BertForMaskedLM

    folder.mkdir(parents=True)
    ens = [f"ENSG{i:011d}" for i in range(25_424)]
    tokens = {"<pad>": 0, "<mask>": 1} | {g: i + 2 for i, g in enumerate(ens)}
    for stem, d in (("token_dictionary", tokens), ("gene_median_dictionary", {g: 1.0 + (i % 13) / 5 for i, g in enumerate(ens)}),
                    ("gene_name_id_dict", dict(zip(genes, ens)))):
        (folder / f"{stem}_gc30M.pkl").write_bytes(pickle.dumps(d))
    cfg = BertConfig(vocab_size=len(tokens), hidden_size=256, num_hidden_layers=6, num_attention_heads=4, intermediate_size=512,
                     max_position_embeddings=2048, hidden_act="relu", layer_norm_eps=1e-12, pad_token_id=0, type_vocab_size=2)
    BertForMaskedLM(cfg).save_pretrained(folder)


def write_scfoundation(folder: Path, genes: list[str]) -> None:
    import torch

    from scfm_bench.adapters.scfoundation import GENE_LIST, _build_module

    folder.mkdir(parents=True)
    names = genes + [f"FILLER{i}" for i in range(19_264 - len(genes))]
    model = _build_module(n_pos=19_267, dim=768, depth=12, heads=12, ff=3072, bin_num=100, bin_alpha=1.0)
    config = {"model": "mae_autobin", "model_config": {"mae_autobin": {"encoder": {"heads": 12}, "bin_alpha": 1.0, "seq_len": 19_266}}}
    torch.save({"cell": {"config": config, "state_dict": {"model." + k: v for k, v in model.state_dict().items()}}},
               folder / "models.ckpt")
    (folder / GENE_LIST).write_text("gene_name\tindex\n" + "".join(f"{g}\t{i}\n" for i, g in enumerate(names)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=96)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--models", nargs="+", default=["scgpt", "geneformer", "scfoundation"])
    a = ap.parse_args()

    import numpy as np
    import torch

    from scfm_bench.config import load_suite, packaged_suite_dir
    from scfm_bench.data import load_dataset
    from scfm_bench.embed import PeakMemory
    from scfm_bench.embed.engine import forward_context, run_batches
    from scfm_bench.progress import set_enabled
    from scfm_bench.registry import ADAPTERS
    from scfm_bench.settings import Settings

    set_enabled(False)
    suite = load_suite(packaged_suite_dir())
    ds = load_dataset("pbmc68k_semisynthetic", suite.catalogue.datasets["pbmc68k_semisynthetic"], Settings(), suite_root=suite.root)
    adata = ds.adata[np.sort(np.random.default_rng(0).choice(ds.adata.n_obs, a.cells, replace=False))].copy()
    genes = list(adata.var_names)
    print(f"# {adata.n_obs} cells x {adata.n_vars} genes, torch {torch.__version__}, {torch.get_num_threads()} threads",
          file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        for key, writer, dims in (("scgpt", write_scgpt, "12x512"), ("geneformer", write_geneformer_v1, "V1 6x256"),
                                  ("scfoundation", write_scfoundation, "01B 12x768")):
            if key not in a.models:
                continue
            folder = Path(tmp) / key
            writer(folder, genes)
            model = ADAPTERS.get(key)({"checkpoint": str(folder)}, seed=0)
            model.load("cpu")
            t0 = time.perf_counter()
            prep = model.prepare(adata)
            prep_s = time.perf_counter() - t0
            lengths = np.asarray(prep.lengths)
            times: dict[str, list[float]] = {"bucketed": [], "plain": []}
            peak = {}
            for _ in range(a.repeats):
                for mode in times:
                    with PeakMemory() as pm, forward_context("cpu"):
                        t0 = time.perf_counter()
                        run_batches(model, prep, a.batch_size, token_budget=model.token_budget, bucketed=mode == "bucketed")
                        times[mode].append(time.perf_counter() - t0)
                    peak[mode] = max(peak.get(mode, 0.0), pm.peak_ram_mb)
            med = {m: statistics.median(t) for m, t in times.items()}
            for mode in times:
                print(json.dumps({
                    "benchmark": f"{key} {dims} {mode}", "median_s": round(med[mode], 3), "runs_s": [round(t, 3) for t in times[mode]],
                    "cells_per_s": round(len(lengths) / med[mode], 2), "tokens_per_s": round(int(lengths.sum()) / med[mode], 1),
                    "peak_ram_mb": round(peak[mode], 1), "prepare_s": round(prep_s, 3),
                    "tokens_per_cell": {"min": int(lengths.min()), "median": int(np.median(lengths)), "max": int(lengths.max())},
                    **({"speedup_vs_plain": round(med["plain"] / med["bucketed"], 2)} if mode == "bucketed" else {}),
                }), flush=True)
            del model


if __name__ == "__main__":
    main()
