"""Tiny random-weight checkpoints in each model's on-disk format (built in tmp_path, never committed)."""

from __future__ import annotations

import json

import numpy as np
import scipy.sparse as sp
from anndata import AnnData

SYMBOLS = [f"GENE{i}" for i in range(54)]


def toy_counts(n_cells=24, genes=SYMBOLS, seed=0, skew=True):
    """Raw counts with very uneven genes per cell (skewed lengths exercise bucketing and truncation)."""
    rng = np.random.default_rng(seed)
    X = np.zeros((n_cells, len(genes)), np.float32)
    for i in range(n_cells):
        k = int(rng.integers(3, len(genes))) if skew else len(genes) // 2
        cols = rng.choice(len(genes), k, replace=False)
        X[i, cols] = rng.integers(1, 30, k)
    ad = AnnData(sp.csr_matrix(X))
    ad.var_names = list(genes)
    ad.obs_names = [f"cell{i}" for i in range(n_cells)]
    return ad


def build_scgpt(folder, *, d=16, layers=2, heads=2, d_hid=32, impl=False, drop=None, seed=0):
    import torch

    from scfm_bench.adapters.scgpt import _build_module

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {g: i for i, g in enumerate(SYMBOLS)} | {"<pad>": 54, "<cls>": 55, "<eoc>": 56}
    args = {"embsize": d, "nheads": heads, "d_hid": d_hid, "nlayers": layers, "n_layers_cls": 3, "dropout": 0.2,
            "pad_token": "<pad>", "pad_value": -2, "mask_value": -1, "n_bins": 51, "max_seq_len": 1200,
            "input_style": "binned", "input_emb_style": "continuous", "fast_transformer": True}
    torch.manual_seed(seed)
    state = _build_module(len(vocab), args, 54).state_dict()
    attn = "self_attn._impl." if impl else "self_attn."
    state = {k.replace("self_attn.in_proj_", attn + "Wqkv.").replace("self_attn.out_proj.", attn + "out_proj."): v
             for k, v in state.items()}
    state["decoder.fc.0.weight"] = torch.zeros(d, d)  # a training head: ignored
    if drop:
        state.pop(drop)
    torch.save(state, folder / "best_model.pt")
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "args.json").write_text(json.dumps(args))
    return folder
