"""A tiny random-weight scFoundation folder in the authors' on-disk format (spec models.md §4.7):
``models.ckpt`` = {'cell', 'rde', 'gene'} Lightning-style entries, plus the gene list TSV."""

from __future__ import annotations

import numpy as np
from tiny_ckpt import SYMBOLS

# 48 of the toy dataset's 54 genes plus 12 the dataset lacks, shuffled: list order != var order
GENES = [str(g) for g in np.random.default_rng(7).permutation(SYMBOLS[:48] + [f"LISTONLY{i}" for i in range(12)])]
DIM, HEADS, BIN_NUM = 16, 2, 10


def build_scfoundation(folder, *, genes=GENES, repo_layout=False, drop=None, seed=0):
    import torch

    from scfm_bench.adapters.scfoundation import _build_module

    folder.mkdir(parents=True, exist_ok=True)
    seq_len = len(genes) + 2
    model_cfg = {"model": "mae_autobin",
                 "encoder": {"hidden_dim": DIM, "depth": 2, "heads": HEADS, "dim_head": 8, "module_type": "transformer"},
                 "decoder": {"hidden_dim": 8, "depth": 1, "heads": 2, "dim_head": 4, "module_type": "performer"},
                 "n_class": 104, "seq_len": seq_len, "bin_alpha": 1.0, "bin_num": BIN_NUM, "pad_token_id": 103, "mask_token_id": 102}
    rnaseq = {"bin_num": BIN_NUM, "pad_token_id": 103, "mask_token_id": 102, "seq_len": seq_len}

    def entry(s):
        torch.manual_seed(s)
        state = _build_module(n_pos=seq_len + 1, dim=DIM, depth=2, heads=HEADS, ff=4 * DIM, bin_num=BIN_NUM, bin_alpha=1.0).state_dict()
        # the MAE's pre-training parts, which the adapter ignores
        state |= {"decoder_embed.weight": torch.randn(8, DIM), "decoder.layers.0.0.fn.to_q.weight": torch.randn(8, 8),
                  "norm.weight": torch.ones(8), "to_final.weight": torch.randn(1, 8), "to_final.bias": torch.zeros(1)}
        if drop:
            state.pop(drop)
        return {"config": {"model": "mae_autobin", "model_config": {"mae_autobin": model_cfg}, "dataset_config": {"rnaseq": rnaseq}},
                "state_dict": {"model." + k: v for k, v in state.items()}}

    ckpt = folder / "models" / "models.ckpt" if repo_layout else folder / "models.ckpt"
    ckpt.parent.mkdir(exist_ok=True)
    torch.save({"cell": entry(seed), "rde": entry(seed + 1), "gene": entry(seed + 2)}, ckpt)
    (folder / "OS_scRNA_gene_index.19264.tsv").write_text("gene_name\tindex\n" + "".join(f"{g}\t{i}\n" for i, g in enumerate(genes)))
    return folder
