"""scFoundation (no package to compare with): the adapter against a forward pass written here in numpy from
the published description (the authors' get_embedding.py with --pre_normalized F, --tgthighres t4,
--pool_type all; the mae_autobin encoder), on a 1-layer, 2-head checkpoint whose weights are drawn here
and saved in the authors' models.ckpt layout. Nothing is shared with the adapter but the file format.

Steps, per cell:
1. genes follow the gene list (missing ones count 0); total = sum of the counts on the list;
   x = log1p(count / total * 1e4); append T = 4 and S = log10(total); keep the entries > 0 (T, S last);
   position ids: the list row, T = n_genes, S = n_genes + 1.
2. token_emb: h = leaky_relu(w1 * x + b1, 0.1); weights = softmax(bin_alpha * h + W2 h + b2) over the bins;
   embedding = weights @ E; plus pos_emb[position].
3. one post-norm transformer layer (torch's TransformerEncoderLayer layout and defaults: 2-head scaled
   dot-product attention, ReLU feed-forward, LayerNorm eps 1e-5 after each residual), then LayerNorm.
4. [S token, T token, max over the gene tokens, mean over the gene tokens].
"""

from __future__ import annotations

import numpy as np
import torch
from tiny_ckpt import toy_counts

from scfm_bench.adapters.scfoundation import ScFoundation
from scfm_bench.embed import embed

# 48 of the toy dataset's 54 genes and two it lacks, shuffled: list order differs from var order
GENES = [str(g) for g in np.random.default_rng(3).permutation([f"GENE{i}" for i in range(48)] + ["LISTONLY0", "LISTONLY1"])]
D, HEADS, FF, BINS, ALPHA, EPS = 8, 2, 16, 6, 1.0, 1e-5


def _weights(seed=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_pos = len(GENES) + 3  # seq_len + 1 rows, seq_len = genes + T + S
    w = {"token_emb.mlp.weight": rng.normal(size=(BINS, 1)), "token_emb.mlp.bias": rng.normal(size=BINS),
         "token_emb.mlp2.weight": rng.normal(size=(BINS, BINS)), "token_emb.mlp2.bias": rng.normal(size=BINS),
         "token_emb.emb.weight": rng.normal(size=(BINS, D)), "token_emb.emb_mask.weight": rng.normal(size=(1, D)),
         "token_emb.emb_pad.weight": rng.normal(size=(1, D)), "pos_emb.weight": rng.normal(size=(n_pos, D))}
    layer = "encoder.transformer_encoder.0."
    w |= {layer + "self_attn.in_proj_weight": rng.normal(size=(3 * D, D)) / np.sqrt(D),
          layer + "self_attn.in_proj_bias": rng.normal(size=3 * D) * 0.1,
          layer + "self_attn.out_proj.weight": rng.normal(size=(D, D)) / np.sqrt(D),
          layer + "self_attn.out_proj.bias": rng.normal(size=D) * 0.1,
          layer + "linear1.weight": rng.normal(size=(FF, D)) / np.sqrt(D), layer + "linear1.bias": rng.normal(size=FF) * 0.1,
          layer + "linear2.weight": rng.normal(size=(D, FF)) / np.sqrt(FF), layer + "linear2.bias": rng.normal(size=D) * 0.1}
    for norm in (layer + "norm1", layer + "norm2", "encoder.norm"):  # non-trivial scales, so misplaced norms show
        w |= {norm + ".weight": 1 + 0.5 * rng.normal(size=D), norm + ".bias": 0.5 * rng.normal(size=D)}
    return w


def _write_checkpoint(folder, w):
    """models.ckpt as the authors store it: {'cell','rde','gene'} -> {'config', 'state_dict' with 'model.' keys}."""
    seq_len = len(GENES) + 2
    cfg = {"model": "mae_autobin", "encoder": {"hidden_dim": D, "depth": 1, "heads": HEADS, "dim_head": D // HEADS,
                                              "module_type": "transformer"},
           "n_class": 104, "seq_len": seq_len, "bin_alpha": ALPHA, "bin_num": BINS, "pad_token_id": 103, "mask_token_id": 102}
    rnaseq = {"bin_num": BINS, "pad_token_id": 103, "mask_token_id": 102, "seq_len": seq_len}
    entry = {"config": {"model": "mae_autobin", "model_config": {"mae_autobin": cfg}, "dataset_config": {"rnaseq": rnaseq}},
             "state_dict": {"model." + k: torch.tensor(v, dtype=torch.float32) for k, v in w.items()}}
    folder.mkdir(parents=True)
    torch.save({"cell": entry, "rde": entry, "gene": entry}, folder / "models.ckpt")
    rows = "".join(f"{g}\t{i}\n" for i, g in enumerate(GENES))
    (folder / "OS_scRNA_gene_index.19264.tsv").write_text("gene_name\tindex\n" + rows)
    return folder


def _layer_norm(h, name, w):
    mu, var = h.mean(-1, keepdims=True), h.var(-1, keepdims=True)
    return (h - mu) / np.sqrt(var + EPS) * w[name + ".weight"] + w[name + ".bias"]


def _by_hand(counts_row: np.ndarray, var_names: list[str], w) -> np.ndarray:
    # 1. tokens
    col = {g: i for i, g in enumerate(var_names)}
    c = np.array([counts_row[col[g]] if g in col else 0.0 for g in GENES], np.float64)
    total = c.sum()
    values = np.concatenate([np.log1p(c / total * 1e4), [4.0, np.log10(total)]])
    pos = np.flatnonzero(values > 0)
    x = values[pos]
    # 2. embedding
    h = x[:, None] * w["token_emb.mlp.weight"][:, 0] + w["token_emb.mlp.bias"]
    h = np.where(h > 0, h, 0.1 * h)
    z = ALPHA * h + h @ w["token_emb.mlp2.weight"].T + w["token_emb.mlp2.bias"]
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    h = p @ w["token_emb.emb.weight"] + w["pos_emb.weight"][pos]
    # 3. one post-norm layer: attention, add & norm, feed-forward, add & norm; then the encoder's norm
    L = "encoder.transformer_encoder.0."
    q, k, v = np.split(h @ w[L + "self_attn.in_proj_weight"].T + w[L + "self_attn.in_proj_bias"], 3, axis=1)
    dh = D // HEADS
    heads = []
    for i in range(HEADS):
        s = q[:, i * dh:(i + 1) * dh] @ k[:, i * dh:(i + 1) * dh].T / np.sqrt(dh)
        a = np.exp(s - s.max(1, keepdims=True))
        heads.append((a / a.sum(1, keepdims=True)) @ v[:, i * dh:(i + 1) * dh])
    attn = np.concatenate(heads, 1) @ w[L + "self_attn.out_proj.weight"].T + w[L + "self_attn.out_proj.bias"]
    h = _layer_norm(h + attn, L + "norm1", w)
    ff = np.maximum(h @ w[L + "linear1.weight"].T + w[L + "linear1.bias"], 0) @ w[L + "linear2.weight"].T + w[L + "linear2.bias"]
    h = _layer_norm(_layer_norm(h + ff, L + "norm2", w), "encoder.norm", w)
    # 4. pooling
    return np.concatenate([h[-1], h[-2], h[:-2].max(0), h[:-2].mean(0)])


def test_embedding_equals_numpy_forward_pass(tmp_path):
    w = _weights()
    folder = _write_checkpoint(tmp_path / "scf", w)
    ad = toy_counts()
    got = embed(ScFoundation({"checkpoint": str(folder)}), ad, dataset_sha256="t", cache=None, batch_size=5).X
    dense = ad.X.toarray().astype(np.float64)
    want = np.stack([_by_hand(row, list(ad.var_names), w) for row in dense])
    assert got.shape == (ad.n_obs, 4 * D)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    assert np.abs(want - want.mean(0)).max() > 0.1  # the cells differ: a constant output would not pass
