"""Parity with the authors' code (PyPI ``uce-model`` 0.1.4, the ``test`` extra) on a tiny checkpoint
written by their own ``TransformerModel``: gene -> (table row, chromosome code, start) mapping, the cell
sentences of ``sample_cell_sentences`` draw for draw (same legacy RNG stream), and the embeddings of
their batch path (seq-first lookup, L2-normalised tokens, float mask ``1 - mask``, collator
truncation) against ours in the default float-mask mode, under a different engine batching."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from ci_guard import skip_or_fail_in_ci
from tiny_ckpt import toy_counts
from tiny_uce import HUMAN_OFFSET, N_CHROM_TOKENS, build_uce

from scfm_bench.adapters.uce import PROTEIN_EMBEDDINGS, UCE, tokenize_cell
from scfm_bench.embed import embed

try:
    import uce.model as uce_model
except ImportError:
    skip_or_fail_in_ci("the authors' UCE package is not installed (pip install 'scfm-bench[test]')")
from uce.data_proc.data_utils import adata_path_to_prot_chrom_starts, get_spec_chrom_csv
from uce.eval_data import MultiDatasetSentenceCollator, sample_cell_sentences

GENES = [f"GENE{i}" for i in range(1, 47)]  # upstream needs every gene in species_chrom.csv, listed once
S, PAD_LENGTH = 40, 1536
pytestmark = pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")  # the authors' seq-first encoder
ARGS = SimpleNamespace(sample_size=S, pad_length=PAD_LENGTH, cls_token_idx=3, CHROM_TOKEN_OFFSET=HUMAN_OFFSET + 48,
                       chrom_token_right_idx=2, pad_token_idx=0)


@pytest.fixture(scope="module")
def authors_dir(tmp_path_factory):
    """Side files from the tiny builder; weights saved from the authors' TransformerModel."""
    folder = build_uce(tmp_path_factory.mktemp("uce_parity") / "uce")
    torch.manual_seed(1)
    model = uce_model.TransformerModel(token_dim=8, d_model=40, nhead=20, d_hid=32, nlayers=2, output_dim=8)
    model.pe_embedding = torch.nn.Embedding.from_pretrained(torch.randn(HUMAN_OFFSET + 48 + N_CHROM_TOKENS, 8))
    torch.save(model.state_dict(), folder / "4layer_model.torch")
    return folder, model.eval()


@pytest.fixture(scope="module")
def data():
    return toy_counts(n_cells=10, genes=GENES, seed=5)


def test_cell_sentences_match_the_authors(authors_dir, data):
    folder, _ = authors_dir
    spec_genes = [g.upper() for g in torch.load(folder / PROTEIN_EMBEDDINGS)]
    rows, chroms, starts = adata_path_to_prot_chrom_starts(data, "human", spec_genes, get_spec_chrom_csv(folder / "species_chrom.csv"),
                                                           HUMAN_OFFSET)
    a = UCE({"checkpoint": str(folder)})
    a.load("cpu")
    ours = np.array([a.vocab[g] for g in GENES])
    np.testing.assert_array_equal(ours[:, 0], rows.numpy())
    np.testing.assert_array_equal(ours[:, 1], np.asarray(chroms))
    np.testing.assert_array_equal(ours[:, 2], starts)
    assert a.chrom_offset == ARGS.CHROM_TOKEN_OFFSET
    X = data.X.toarray()
    for c in range(data.n_obs):
        counts = torch.tensor(X[c : c + 1].astype(np.int64))
        weights = torch.log1p(counts) / torch.sum(torch.log1p(counts))
        np.random.seed(c)
        sent, mask, seq_len, _ = sample_cell_sentences(counts, weights, "d", ARGS, {"d": rows}, {"d": np.asarray(chroms)},
                                                       {"d": starts})
        nz = np.flatnonzero(X[c])
        mine = tokenize_cell(ours[nz, 0], ours[nz, 1], ours[nz, 2], X[c, nz], sample_size=S, chrom_offset=a.chrom_offset,
                             rng=np.random.RandomState(c))  # the authors' global stream, for this comparison only
        assert seq_len == len(mine) and int(mask.sum()) == len(mine)
        np.testing.assert_array_equal(sent[0, :seq_len].numpy(), mine)


def test_embeddings_match_the_authors_batch_path(authors_dir, data):
    folder, model = authors_dir
    a = UCE({"checkpoint": str(folder), "sample_size": S, "mask_batch_size": 4})
    ours = embed(a, data, dataset_sha256="t", cache=None, batch_size=3).X  # engine batches differ from the authors' 4
    assert a.shapes["decoder_hidden"] == 1024  # the authors hard-code it; we read it from the weights
    prep = a.prepare(data)
    collate = MultiDatasetSentenceCollator(ARGS)
    ref = []
    for start in range(0, data.n_obs, 4):
        items = []
        for i in range(start, min(start + 4, data.n_obs)):
            seq = prep.dataset[i][0]
            padded, msk = torch.zeros(PAD_LENGTH), torch.zeros(PAD_LENGTH)
            padded[: len(seq)], msk[: len(seq)] = torch.from_numpy(seq).float(), 1
            items.append((padded, msk, i, len(seq), padded))
        sentences, mask, _, _ = collate(items)
        with torch.no_grad():
            src = torch.nn.functional.normalize(model.pe_embedding(sentences.permute(1, 0).long()), dim=2)
            ref.append(model(src, mask=mask)[1].numpy())
    ref = np.concatenate(ref)
    assert len({len(t) for t, _ in prep.dataset}) > 1  # cells pad differently, so the float mask matters
    np.testing.assert_allclose(ours, ref, atol=1e-5)
