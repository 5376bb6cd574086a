"""Geneformer rank-value tokens on real cells against a re-derivation written here from the published
definition (Theodoris et al. 2023; the authors' ``TranscriptomeTokenizer``), not from the adapter's code.

Published definition, per cell: normalise each gene's count by the cell's total count over all genes
(``n_counts``) times 10,000, divide by the gene's median from the median dictionary, keep the nonzero
genes, order them by decreasing value (``np.argsort(-values)`` over the genes in the file's order, as
the authors' ``rank_genes`` does), map them to ids with the token dictionary, truncate to the model's
input size; V2 wraps the sequence as ``<cls>`` + first input_size - 2 genes + ``<eos>``.

No ``geneformer`` package is on PyPI and the real dictionaries (gc30M/gc104M pickles) live on Hugging Face,
out of reach offline, so both dictionaries are built here from the cells' Ensembl ids
(``var['ensembl_id']``): token ids in a shuffled order, and medians computed the published way (each
gene's median of its nonzero normalised values) but over this dataset instead of Genecorpus.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from scfm_bench.adapters.geneformer import Geneformer


@pytest.fixture
def cells(shared_data):
    import anndata as ad

    return ad.read_h5ad(shared_data / "pbmc_3chem_1k2.h5ad")[:300].copy()


def _dictionaries(adata):
    ens = adata.var["ensembl_id"]
    keep = ens.notna() & ~ens.duplicated(keep=False)  # one column per id: nothing to collapse
    genes = ens[keep].astype(str).tolist()
    X = adata.X.toarray().astype(np.float64)
    norm = X / X.sum(1, keepdims=True) * 10_000
    cols = np.flatnonzero(keep.to_numpy())
    medians = {g: float(np.median(norm[:, j][norm[:, j] > 0])) for g, j in zip(genes, cols) if (norm[:, j] > 0).any()}
    order = np.random.default_rng(0).permutation(len(medians))
    return list(medians), medians, order


def _checkpoint(folder, tokens, input_size):
    import torch
    from transformers import BertConfig, BertForMaskedLM

    folder.mkdir()
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=max(tokens.values()) + 1, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=input_size, pad_token_id=0)
    BertForMaskedLM(cfg).save_pretrained(folder)
    return folder


def _published_tokens(adata, tokens, medians, *, input_size, v2):
    """The published recipe, cell by cell (dense rows, genes in the file's order)."""
    ens = adata.var["ensembl_id"].astype(str).to_numpy()
    cols = np.array([j for j, g in enumerate(ens) if g in medians])  # genes of the median dictionary, file order
    out = []
    for row in adata.X.toarray().astype(np.float64):
        n_counts = row.sum()  # over all genes
        values = row[cols] / n_counts * 10_000 / np.array([medians[g] for g in ens[cols]])
        nz = values > 0
        ranked = np.array([tokens[g] for g in ens[cols][nz]])[np.argsort(-values[nz])]
        out.append(np.concatenate([[tokens["<cls>"]], ranked[: input_size - 2], [tokens["<eos>"]]]) if v2
                   else ranked[:input_size])
    return out


@pytest.mark.parametrize("v2, input_size", [(False, 256), (True, 128)])
def test_rank_value_tokens_equal_the_published_recipe(cells, tmp_path, v2, input_size):
    genes, medians, order = _dictionaries(cells)
    specials = ["<pad>", "<mask>", "<cls>", "<eos>"] if v2 else ["<pad>", "<mask>"]
    tokens = {s: i for i, s in enumerate(specials)} | {genes[k]: len(specials) + i for i, k in enumerate(order)}
    folder = _checkpoint(tmp_path / "gf", tokens, input_size)
    tag = "gc104M" if v2 else "gc30M"
    (folder / f"token_dictionary_{tag}.pkl").write_bytes(pickle.dumps(tokens))
    (folder / f"gene_median_dictionary_{tag}.pkl").write_bytes(pickle.dumps(medians))

    a = Geneformer({"checkpoint": str(folder)})
    a.load("cpu")
    ours = a.prepare(cells).dataset
    want = _published_tokens(cells, tokens, medians, input_size=input_size, v2=v2)
    assert len(ours) == len(want) == cells.n_obs
    for i, (o, w) in enumerate(zip(ours, want)):
        np.testing.assert_array_equal(o, w, err_msg=f"cell {i}")
    assert a.run_info["gene_id_source"] == "var['ensembl_id']"
    assert a.run_info["cells_truncated"] > 0  # the truncation path is exercised
