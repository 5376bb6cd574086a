"""scFM embedding throughput on CPU at real architecture sizes (random weights): cells/s, tokens/s and
peak RAM, with length-bucketed (token budget) vs plain padded batching in the same run.

Models: scGPT 12x512 (vocab 60,697), Geneformer V1 6x256 (vocab 25,426, 2,048 positions),
Geneformer V2 12x768 (vocab 20,275, 4,096 positions), scFoundation 01B 12x768 (19,264-gene list,
100 bins) and UCE 4x1,280 (token dim 5,120, FFN 5,120, decoder 1,024 -> 1,280, 1,536 positions; the
authors' float mask, or ``uce_bool``). UCE's token table holds only the dataset's genes, the 4 special
and 1,895 chromosome rows (the released 145,469 x 5,120 table is only read by lookup: memory, not
speed). Checkpoints are written to a temp folder in each model's on-disk format, so loading goes
through the adapters exactly as for real weights.

Data: ``--data default`` is a seeded subsample of the default dataset (765 genes, so lengths barely
vary); ``--data skewed`` is a seeded count matrix over 6,000 genes whose genes-per-cell follow a
log-normal like 10x PBMCs (median ~700, 5th-95th percentile ~250-2,000), where padding to the longest
cell in input order wastes most of the compute.

On a GPU (``--device cuda``) every mode runs twice, fp32 and bf16 autocast (the engine's default there),
reporting the bf16 speed-up and its largest deviation from fp32 (max |diff| and min cosine per cell);
``--oom-check`` then caps the process's GPU memory so that one batch of ``--oom-batch`` cells cannot fit
and checks that the engine's back-off (halve the batch, re-plan) finishes with the same rows.

Run: .venv/bin/python benchmarks/bench_scfm.py [--data skewed] [--cells 96] [--repeats 3] [--batch-size 32]
     [--models scgpt,geneformer_v1,geneformer_v2,scfoundation,uce,uce_bool] [--device cuda] [--oom-check]
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


def write_scgpt(folder: Path, genes: list[str], *, dims: tuple[int, int, int, int] = (512, 8, 512, 12),
                vocab_size: int = 60_694) -> None:
    """dims: (embsize, heads, d_hid, layers); the defaults are whole-human's."""
    import torch

    from scfm_bench.adapters.scgpt import _build_module

    folder.mkdir(parents=True)
    names = genes + [f"FILLER{i}" for i in range(vocab_size - len(genes))]
    vocab = {g: i for i, g in enumerate(names)} | {"<pad>": len(names), "<cls>": len(names) + 1, "<eoc>": len(names) + 2}
    args = {"embsize": dims[0], "nheads": dims[1], "d_hid": dims[2], "nlayers": dims[3], "dropout": 0.2, "pad_token": "<pad>",
            "pad_value": -2}
    state = _build_module(len(vocab), args, len(names)).state_dict()
    torch.save({k.replace("self_attn.in_proj_", "self_attn.Wqkv."): v for k, v in state.items()}, folder / "best_model.pt")
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "args.json").write_text(json.dumps(args))


def write_geneformer(folder: Path, genes: list[str], *, v2: bool, dims: tuple[int, int, int, int] | None = None) -> None:
    """dims: (hidden, layers, heads, FFN) instead of the release's."""
    from transformers import BertConfig, BertForMaskedLM

    folder.mkdir(parents=True)
    specials = ["<pad>", "<mask>", "<cls>", "<eos>"] if v2 else ["<pad>", "<mask>"]
    ens = [f"ENSG{i:011d}" for i in range((20_275 if v2 else 25_426) - len(specials))]
    tokens = {t: i for i, t in enumerate(specials)} | {g: i + len(specials) for i, g in enumerate(ens)}
    tag = "gc104M" if v2 else "gc30M"
    for stem, d in (("token_dictionary", tokens), ("gene_median_dictionary", {g: 1.0 + (i % 13) / 5 for i, g in enumerate(ens)}),
                    ("gene_name_id_dict", dict(zip(genes, ens)))):
        (folder / f"{stem}_{tag}.pkl").write_bytes(pickle.dumps(d))
    hidden, layers, heads, ffn = dims or ((768, 12, 12, 3072) if v2 else (256, 6, 4, 512))
    cfg = BertConfig(vocab_size=len(tokens), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=ffn, max_position_embeddings=4096 if v2 else 2048, hidden_act="relu",
                     layer_norm_eps=1e-12, pad_token_id=0, type_vocab_size=2)
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


MODELS = {  # name: (adapter key, writer, architecture, adapter params beyond the checkpoint)
    "scgpt": ("scgpt", write_scgpt, "12x512", {"use_hvg": False}),
    "geneformer_v1": ("geneformer", lambda f, g: write_geneformer(f, g, v2=False), "V1 6x256", {}),
    "geneformer_v2": ("geneformer", lambda f, g: write_geneformer(f, g, v2=True), "V2 12x768 (FFN 3,072 assumed)", {}),
    "scfoundation": ("scfoundation", write_scfoundation, "01B 12x768", {}),
    "uce": ("uce", write_uce, "4x1280 float mask", {"mask": "float"}),
    "uce_bool": ("uce", write_uce, "4x1280 bool mask", {"mask": "bool"}),
}


def skewed_counts(n_cells: int, n_genes: int = 6000, seed: int = 0):
    """Seeded raw counts whose nonzero genes per cell are log-normal (10x-PBMC-like spread)."""
    import numpy as np
    import scipy.sparse as sp
    from anndata import AnnData

    rng = np.random.default_rng(seed)
    k = np.clip(rng.lognormal(np.log(700), 0.65, n_cells), 100, n_genes).astype(int)
    rows = np.repeat(np.arange(n_cells), k)
    cols = np.concatenate([rng.choice(n_genes, n, replace=False) for n in k])
    X = sp.csr_matrix((rng.geometric(0.5, rows.size).astype(np.float32), (rows, cols)), shape=(n_cells, n_genes))
    ad = AnnData(X)
    ad.var_names = [f"GENE{i}" for i in range(n_genes)]
    return ad


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=96)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--data", choices=["default", "skewed"], default="default")
    ap.add_argument("--models", default="scgpt,geneformer_v1,geneformer_v2,scfoundation,uce")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--oom-check", action="store_true", help="GPU only: force an OOM and check the back-off")
    ap.add_argument("--oom-batch", type=int, default=1024)
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
    if a.data == "skewed":
        adata = skewed_counts(a.cells)
    else:
        suite = load_suite(packaged_suite_dir())
        ds = load_dataset("pbmc68k_semisynthetic", suite.catalogue.datasets["pbmc68k_semisynthetic"], Settings(),
                          suite_root=suite.root)
        adata = ds.adata[np.sort(np.random.default_rng(0).choice(ds.adata.n_obs, a.cells, replace=False))].copy()
    genes = list(adata.var_names)
    print(f"# {adata.n_obs} cells x {adata.n_vars} genes, torch {torch.__version__}, {torch.get_num_threads()} threads",
          file=sys.stderr)
    precisions = ["fp32", "auto"] if a.device.startswith("cuda") else ["fp32"]
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.models.split(","):
            key, writer, dims, params = MODELS[name]
            folder = Path(tmp) / name
            writer(folder, genes)
            model = ADAPTERS.get(key)({"checkpoint": str(folder), **params}, seed=0)
            model.load(a.device)
            t0 = time.perf_counter()
            prep = model.prepare(adata)
            prep_s = time.perf_counter() - t0
            lengths = np.asarray(prep.lengths)
            runs = [(mode, prec) for prec in precisions for mode in ("bucketed", "plain")]
            times: dict[tuple, list[float]] = {r: [] for r in runs}
            peak, outputs, used = {}, {}, {}
            for _ in range(a.repeats):
                for mode, prec in runs:
                    with PeakMemory() as pm, forward_context(a.device, prec) as used[prec]:
                        t0 = time.perf_counter()
                        outputs[mode, prec] = run_batches(model, prep, a.batch_size, token_budget=model.token_budget,
                                                          bucketed=mode == "bucketed")
                        _sync(torch, a.device)
                        times[mode, prec].append(time.perf_counter() - t0)
                    peak[mode, prec] = max(peak.get((mode, prec), 0.0), pm.peak_gpu_mb or pm.peak_ram_mb)
            med = {r: statistics.median(t) for r, t in times.items()}
            for mode, prec in runs:
                row = {"benchmark": f"{key} {dims} {a.data} {mode} {used[prec]} {a.device}", "median_s": round(med[mode, prec], 3),
                       "runs_s": [round(t, 3) for t in times[mode, prec]],
                       "cells_per_s": round(len(lengths) / med[mode, prec], 2),
                       "tokens_per_s": round(int(lengths.sum()) / med[mode, prec], 1),
                       ("peak_gpu_mb" if a.device.startswith("cuda") else "peak_ram_mb"): round(peak[mode, prec], 1),
                       "prepare_s": round(prep_s, 3),
                       "tokens_per_cell": {"min": int(lengths.min()), "median": int(np.median(lengths)), "max": int(lengths.max())}}
                if mode == "bucketed":
                    row |= {"speedup_vs_plain": round(med["plain", prec] / med[mode, prec], 2),
                            "max_abs_diff_vs_plain": float(np.abs(outputs[mode, prec] - outputs["plain", prec]).max())}
                if prec != "fp32":
                    row |= {"speedup_vs_fp32": round(med[mode, "fp32"] / med[mode, prec], 2), **_deviation(outputs[mode, prec], outputs[mode, "fp32"])}
                print(json.dumps(row), flush=True)
            if a.oom_check and a.device.startswith("cuda"):
                print(json.dumps(_oom_check(model, prep, a, torch, forward_context, run_batches)), flush=True)
            del model


def _sync(torch, device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _deviation(x, ref) -> dict:
    import numpy as np

    cos = (x * ref).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(ref, axis=1))
    return {"max_abs_diff_vs_fp32": float(np.abs(x - ref).max()), "min_cosine_vs_fp32": float(cos.min())}


def _oom_check(model, prep, a, torch, forward_context, run_batches) -> dict:
    """Cap this process's GPU memory just above what the weights and a normal run need, then ask for one
    batch of ``--oom-batch`` cells: the engine must meet a real CUDA OOM, halve and finish."""
    import logging

    import numpy as np

    warnings: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda rec: warnings.append(rec.getMessage())
    logging.getLogger("scfm_bench.embed.engine").addHandler(handler)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    with forward_context(a.device, "auto"):
        ref = run_batches(model, prep, a.batch_size, token_budget=None, bucketed=True)
    need = torch.cuda.max_memory_allocated()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, 1.5 * need / total))
    try:
        with forward_context(a.device, "auto"):
            got = run_batches(model, prep, a.oom_batch, token_budget=None, bucketed=True)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        logging.getLogger("scfm_bench.embed.engine").removeHandler(handler)
    backoffs = [w for w in warnings if "out of memory" in w]
    return {"oom_check": model.key, "cap_mb": round(1.5 * need / 2**20), "first_batch": a.oom_batch,
            "backoffs": len(backoffs), "last": backoffs[-1] if backoffs else None, **_deviation(got, ref)}

if __name__ == "__main__":
    main()
