"""A tiny random-weight UCE model folder in the authors' on-disk layout (spec models.md §3.7).

Token table (8-d): rows 0..3 specials, 5 mouse genes from row 4, the 48 human genes with a protein
embedding from row 9 (in the protein-embedding file's key order, reversed against var order), then
the 1,895 chromosome rows. species_chrom.csv: GENE0..GENE46 on human chromosomes 1, 2, 10, X (GENE47
has a protein embedding but no position; GENE48..53 have neither), a second GENE0 row on Y (ignored:
first row wins) and mouse rows, so codes run over all species: human_1=0, human_10=1, human_2=2,
human_X=3, human_Y=4, mouse_1=5, mouse_2=6.
"""

from __future__ import annotations

import json
import math
import pickle

from tiny_ckpt import SYMBOLS

HUMAN = list(reversed(SYMBOLS[:48]))  # protein-embedding key order = table row order
CHROMS = ["1", "2", "10", "X"]
N_CHROM_TOKENS = 1895
HUMAN_OFFSET = 9


def chromosome_of(i: int) -> str:
    return CHROMS[i % 4]


def start_of(i: int) -> int:
    return 1000 + 7919 * i % 5003  # distinct, not monotone in i


def build_uce(folder, *, weights="4layer_model.torch", d=40, layers=2, drop=None, seed=0, offsets_json=False, legacy=False):
    """``legacy``: torch files in the pre-1.6 (non-zip) format, which cannot be memory-mapped."""
    import pandas as pd
    import torch

    from scfm_bench.adapters.uce import PROTEIN_EMBEDDINGS, build_module

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "protein_embeddings").mkdir(exist_ok=True)
    torch.manual_seed(seed)
    n_tokens = HUMAN_OFFSET + len(HUMAN) + N_CHROM_TOKENS
    shapes = {"n_tokens": n_tokens, "token_dim": 8, "d_model": d, "d_hid": 32, "n_layers": layers, "max_len": 1536,
              "decoder_hidden": 12, "output_dim": 8}
    module = build_module(shapes, 20)
    pos = torch.arange(1536).unsqueeze(1)
    freq = torch.exp(torch.arange(0, d, 2) * (-math.log(10000.0) / d))
    module.pos_encoder.pe[:, 0, 0::2] = torch.sin(pos * freq)
    module.pos_encoder.pe[:, 0, 1::2] = torch.cos(pos * freq)
    state = module.state_dict()
    # the authors' unused heads, with their input width output_dim + d_model: present in real files, ignored
    state |= {"binary_decoder.0.0.weight": torch.randn(12, 8 + d), "binary_decoder.3.weight": torch.randn(1, 12),
              "gene_embedding_layer.0.weight": torch.randn(d, 8), "gene_embedding_layer.2.weight": torch.ones(d)}
    if drop:
        state.pop(drop)
    torch.save(state, folder / weights, _use_new_zipfile_serialization=not legacy)
    esm = {("Gene5" if g == "GENE5" else g): torch.randn(8) for g in HUMAN}  # keys are upper-cased by the reader
    torch.save(esm, folder / PROTEIN_EMBEDDINGS, _use_new_zipfile_serialization=not legacy)
    rows = [("human", chromosome_of(i), f"GENE{i}", start_of(i)) for i in range(47)]
    rows += [("human", "Y", "GENE0", 5), ("mouse", "1", "Gene0", 10), ("mouse", "2", "Gene1", 20)]
    pd.DataFrame(rows, columns=["species", "chromosome", "gene_symbol", "start"]).to_csv(folder / "species_chrom.csv", index=False)
    offsets = {"mouse": 4, "human": HUMAN_OFFSET}
    if offsets_json:
        (folder / "species_offsets.json").write_text(json.dumps(offsets))
    else:
        (folder / "species_offsets.pkl").write_bytes(pickle.dumps(offsets))
    return folder
