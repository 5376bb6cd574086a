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


ENSEMBL = [f"ENSG{i:011d}" for i in range(40)]


def build_geneformer(folder, *, v2=True, max_pos=64, bin_format=False, drop=None, seed=0):
    """HF BERT dir + dictionaries; one many-to-one Ensembl mapping (ENSG...39 -> ENSG...38) to exercise summing."""
    import pickle

    import torch
    from transformers import BertConfig, BertForMaskedLM

    folder.mkdir(parents=True, exist_ok=True)
    specials = ["<pad>", "<mask>", "<cls>", "<eos>"] if v2 else ["<pad>", "<mask>"]
    tokens = {t: i for i, t in enumerate(specials)} | {g: len(specials) + i for i, g in enumerate(ENSEMBL[:39])}
    medians = {g: 0.5 + (i % 7) / 4 for i, g in enumerate(ENSEMBL[:39])}
    mapping = {g: g for g in ENSEMBL[:39]} | {ENSEMBL[39]: ENSEMBL[38]}
    names = {f"GENE{i}": g for i, g in enumerate(ENSEMBL)}
    sub, tag = (folder, "gc104M") if v2 else (folder / "gene_dictionaries_30m", "gc30M")
    sub.mkdir(exist_ok=True)
    for stem, d in (("token_dictionary", tokens), ("gene_median_dictionary", medians), ("ensembl_mapping_dict", mapping),
                    ("gene_name_id_dict", names)):
        (sub / f"{stem}_{tag}.pkl").write_bytes(pickle.dumps(d))
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=len(tokens), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                     max_position_embeddings=max_pos, hidden_act="relu", layer_norm_eps=1e-12, pad_token_id=0, type_vocab_size=2)
    model = BertForMaskedLM(cfg)
    if bin_format or drop:
        cfg.save_pretrained(folder)
        state = model.state_dict() | {"bert.embeddings.position_ids": torch.arange(max_pos)[None]}
        if drop:
            state.pop(drop)
        torch.save(state, folder / "pytorch_model.bin")
    else:
        model.save_pretrained(folder)
    return folder


def one_by_one(adapter, prep) -> np.ndarray:
    """Each cell embedded alone, in input order: what any batching must reproduce."""
    return np.concatenate([adapter.embed_batch(prep.collate([item])).detach().numpy() for item in prep.dataset])
