import numpy as np
import pytest
import scipy.sparse as sp
from anndata import AnnData
from tiny_ckpt import build_scgpt, one_by_one, toy_counts
from tiny_uce import HUMAN, HUMAN_OFFSET, N_CHROM_TOKENS, build_uce, start_of

from scfm_bench.adapters.uce import CHROM_CLOSE, CLS, UCE, authors_pads, read_chromosomes, tokenize_cell
from scfm_bench.embed import embed
from scfm_bench.embed.engine import run_batches
from scfm_bench.exceptions import CellFailed, CellSkipped

S = 48  # genes sampled per cell in these tests (1,024 by default): short sequences keep the CPU tests fast
ROW = {g: HUMAN_OFFSET + i for i, g in enumerate(HUMAN)}  # token-table row of each human gene
CHROM_OFFSET = HUMAN_OFFSET + len(HUMAN)  # first chromosome row = table rows - 1,895


def _embed(adapter, ad, batch_size=64):
    return embed(adapter, ad, dataset_sha256="t", cache=None, batch_size=batch_size).X


def _uce(folder, seed=0, **params):
    return UCE({"checkpoint": str(folder), "sample_size": S, **params}, seed=seed)


@pytest.fixture(scope="module")
def uce_dir(tmp_path_factory):
    return build_uce(tmp_path_factory.mktemp("uce") / "uce")


@pytest.fixture
def cells():
    """Cell i keeps the genes of its first i % 4 + 1 chromosomes, so sequence lengths differ."""
    ad = toy_counts(n_cells=16, seed=2)
    chrom = np.array([int(g[4:]) % 4 for g in ad.var_names])
    keep = chrom[None, :] <= (np.arange(ad.n_obs) % 4)[:, None]
    ad.X = sp.csr_matrix(ad.X.toarray() * keep)
    return ad


def _with_one_gene(ad: AnnData, cell: int) -> AnnData:
    """A copy where ``cell`` has a single gene (one chromosome: the shortest sequence)."""
    X = ad.X.toarray()
    X[cell] = 0
    X[cell, 0] = 5
    out = ad.copy()
    out.X = sp.csr_matrix(X)
    return out


def _cell(counts: dict[str, int]) -> AnnData:
    ad = AnnData(sp.csr_matrix(np.array([list(counts.values())], dtype=np.float32)))
    ad.var_names = list(counts)
    return ad


# -- tokenisation, by hand --------------------------------------------------------------------------------

def test_tokenize_single_chromosome_sorted_by_start():
    """Two genes on chromosome code 4 (starts 500 and 100, equal counts): <cls>, the chromosome token, the
    genes by start (the one at 100 first), <close>; counts 0 are never drawn."""
    rng = np.random.default_rng(0)
    seq = tokenize_cell(np.array([20, 21, 22]), np.array([4, 4, 4]), np.array([500, 100, 300]), np.array([2.0, 2.0, 0.0]),
                        sample_size=6, chrom_offset=1000, rng=rng)
    assert seq[:2].tolist() == [CLS, 1004] and seq[-1] == CHROM_CLOSE and len(seq) == 1 + 1 + 6 + 1
    genes = seq[2:-1].tolist()
    assert set(genes) <= {20, 21} and genes == sorted(genes, key=lambda r: {21: 0, 20: 1}[r])


def test_tokenize_weights_grouping_and_chromosome_shuffle():
    """counts [1, 0, 3, 7] -> log1p = log 2 x [1, 0, 2, 3] -> p = [1/6, 0, 1/3, 1/2]. Genes 0 and 2 share
    chromosome code 0 (gene 2 starts first), gene 3 is on code 5: blocks [1000, 22.., 20.., 2] and
    [1005, 23.., 2] in a per-cell random order."""
    rows, chroms, starts, counts = np.array([20, 21, 22, 23]), np.array([0, 2, 0, 5]), np.array([500, 10, 100, 7]), \
        np.array([1.0, 0.0, 3.0, 7.0])
    drawn, first_blocks = [], []
    for seed in range(400):
        seq = tokenize_cell(rows, chroms, starts, counts, sample_size=12, chrom_offset=1000, rng=np.random.default_rng(seed))
        assert seq[0] == CLS
        blocks, i = [], 1
        while i < len(seq):  # parse [chromosome token, genes..., <close>] blocks
            j = list(seq[i:]).index(CHROM_CLOSE) + i
            blocks.append((seq[i] - 1000, seq[i + 1 : j].tolist()))
            i = j + 1
        for code, genes in blocks:
            assert set(genes) <= ({20, 22} if code == 0 else {23}) and code in (0, 5)
            assert genes == sorted(genes, key=lambda r: {22: 0, 20: 1, 23: 0}[r])  # by start
        assert sum(len(g) for _, g in blocks) == 12 and len(seq) == 1 + 12 + 2 * len(blocks)
        drawn += [r for _, g in blocks for r in g]
        if len(blocks) == 2:
            first_blocks.append(blocks[0][0])
    freq = {r: drawn.count(r) / len(drawn) for r in (20, 21, 22, 23)}
    assert freq[21] == 0
    np.testing.assert_allclose([freq[20], freq[22], freq[23]], [1 / 6, 1 / 3, 1 / 2], atol=0.02)
    assert 0.4 < np.mean(np.array(first_blocks) == 0) < 0.6  # chromosome order shuffled per cell


def test_empty_cell_is_cls_only():
    seq = tokenize_cell(np.array([], int), np.array([], int), np.array([], int), np.array([]), sample_size=8, chrom_offset=9,
                        rng=np.random.default_rng(0))
    assert seq.tolist() == [CLS]


def test_chromosome_codes_run_over_all_species(uce_dir):
    """pd.Categorical over species_chrom: human_1 < human_10 < human_2 < human_X < human_Y < mouse_1 < mouse_2."""
    table, n = read_chromosomes(uce_dir / "species_chrom.csv")
    assert n == 7
    assert table["GENE0"] == (0, start_of(0))  # its second row (chromosome Y) is ignored
    assert [table[f"GENE{i}"][0] for i in (1, 2, 3)] == [2, 1, 3]  # chromosomes 2, 10, X
    assert "GENE0" in table and "GENE47" not in table


def test_prepare_maps_symbols_to_table_rows(uce_dir):
    """GENE1 (chromosome 2, code 2) alone: [<cls>, chrom row + 2, GENE1's row x S, <close>]. GENE1's row is
    the human offset + its position in the protein-embedding file; the lower-case key 'Gene5' and data symbol
    'gene5' still meet."""
    a = _uce(uce_dir)
    a.load("cpu")
    assert a.chrom_offset == CHROM_OFFSET and a.shapes["n_tokens"] == CHROM_OFFSET + N_CHROM_TOKENS
    seq, pads = a.prepare(_cell({"GENE1": 4, "GENE5": 0, "GENE60": 1})).dataset[0]
    assert seq.tolist() == [CLS, CHROM_OFFSET + 2] + [ROW["GENE1"]] * S + [CHROM_CLOSE] and pads == 0
    seq = a.prepare(_cell({"gene5": 3, "GENE1": 0})).dataset[0][0]
    assert seq.tolist() == [CLS, CHROM_OFFSET + 2] + [ROW["GENE5"]] * S + [CHROM_CLOSE]  # GENE5: chromosome "2" too
    assert a.run_info["genes_matched"] == 2 and a.run_info["matched_count_fraction"] == 1.0


# -- embeddings ----------------------------------------------------------------------------------------

def test_bool_mask_deterministic_normalised_and_independent_of_batching(uce_dir, cells):
    X1 = _embed(_uce(uce_dir, seed=3, mask="bool"), cells, batch_size=64)
    assert X1.shape == (cells.n_obs, 8)
    np.testing.assert_allclose(np.linalg.norm(X1, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(_embed(_uce(uce_dir, seed=3, mask="bool"), cells, batch_size=3), X1, atol=1e-5)
    # the other cells do not matter: a prefix subset, or a changed neighbour, leaves a cell's row alone
    np.testing.assert_allclose(_embed(_uce(uce_dir, seed=3, mask="bool"), cells[:5].copy()), X1[:5], atol=1e-5)
    other = _with_one_gene(cells, 3)  # cell 3 had 4 chromosomes
    np.testing.assert_allclose(_embed(_uce(uce_dir, seed=3, mask="bool"), other)[[0, 1, 2, *range(4, 16)]], X1[[0, 1, 2, *range(4, 16)]],
                               atol=1e-5)
    assert np.abs(_embed(_uce(uce_dir, seed=4, mask="bool"), cells) - X1).max() > 1e-3  # the seed drives sampling


def test_float_mask_reproduces_authors_batching(uce_dir, cells):
    """Authors' mode: each cell sees pads up to the longest cell of its batch (``mask_batch_size`` cells in
    input order) with +1 attention. Equal to one forward of that batch with the authors' mask ``1 - mask``
    as a float tensor, whatever batches the engine forms; so changing another cell of the same batch
    changes a cell's embedding, a cell of another batch does not, and bool mode never does."""
    import torch

    a = _uce(uce_dir, seed=1, mask_batch_size=4)
    X = _embed(a, cells, batch_size=64)
    assert a.run_info["mask"].startswith("float") and "4 cells" in a.run_info["mask"]
    np.testing.assert_allclose(_embed(_uce(uce_dir, seed=1, mask_batch_size=4), cells, batch_size=3), X, atol=1e-5)
    a.load("cpu")
    seqs = [t for t, _ in a.prepare(cells).dataset]
    for chunk in (range(k, k + 4) for k in range(0, 16, 4)):
        n = max(len(seqs[i]) for i in chunk)
        assert len({len(seqs[i]) for i in chunk}) > 1  # the toy cells have different numbers of chromosomes
        ids = torch.zeros((len(chunk), n), dtype=torch.long)
        mask = torch.zeros((len(chunk), n))
        for r, i in enumerate(chunk):
            ids[r, : len(seqs[i])] = torch.from_numpy(seqs[i])
            mask[r, : len(seqs[i])] = 1
        with torch.inference_mode():
            np.testing.assert_allclose(a.module(ids, 1 - mask).numpy(), X[list(chunk)], atol=1e-5)
    bool_X = _embed(_uce(uce_dir, seed=1, mask="bool"), cells)
    assert np.abs(bool_X - X).max() > 1e-3  # pads are not masked in the authors' mode
    np.testing.assert_allclose(_embed(_uce(uce_dir, seed=1, mask_batch_size=1), cells), bool_X, atol=1e-5)  # no pads
    longest = int(np.argmax([len(s) for s in seqs[:4]]))
    other = _with_one_gene(cells, longest)  # the cell that set the batch's padding becomes short
    Y = _embed(_uce(uce_dir, seed=1, mask_batch_size=4), other)
    keep = [i for i in range(4) if i != longest]
    assert np.abs(Y[keep] - X[keep]).max() > 1e-3
    np.testing.assert_allclose(Y[4:], X[4:], atol=1e-5)


def test_float_mask_survives_data_parallel_shards(uce_dir, cells):
    """Shards regroup cells, but each keeps the pads of its authors' batch (computed over the whole input)."""
    single = _embed(_uce(uce_dir, mask_batch_size=4), cells)
    sharded = embed(_uce(uce_dir, mask_batch_size=4), cells, dataset_sha256="t", cache=None, device="cpu,cpu", batch_size=3).X
    np.testing.assert_allclose(sharded, single, atol=1e-5)


def test_authors_pads():
    assert authors_pads(np.array([5, 7, 6, 3, 9]), 2).tolist() == [2, 0, 0, 3, 0]


@pytest.mark.parametrize("mask", ["bool", "float"])
def test_output_order_is_input_order(uce_dir, cells, mask):
    a = _uce(uce_dir, mask=mask, mask_batch_size=4)
    a.load("cpu")
    prep = a.prepare(cells)
    bucketed = run_batches(a, prep, 5, token_budget=200)
    one = one_by_one(a, prep)
    np.testing.assert_allclose(bucketed, one, atol=1e-5)


def test_truncation_and_padding_paths(uce_dir, cells):
    a = _uce(uce_dir, mask="bool", pad_length=20)
    X = _embed(a, cells)
    assert np.isfinite(X).all() and a.run_info["cells_truncated"] == cells.n_obs
    a.load("cpu")
    prep = a.prepare(cells)
    assert max(prep.lengths) == 20 and all(t[0] == CLS for t, _ in prep.dataset)
    ids, bias = prep.collate([prep.dataset[0], (np.array([CLS, 5]), 3)])
    assert ids[1].tolist() == [CLS, 5] + [0] * 18 and bias[1, :5].tolist() == [0, 0, 1, 1, 1] and np.isneginf(bias[1, 5:]).all()
    with pytest.raises(CellFailed, match="pad_length"):
        _embed(_uce(uce_dir, pad_length=4000), cells)


def test_strict_loading_names_the_missing_key(tmp_path, cells):
    broken = build_uce(tmp_path / "b", drop="transformer_encoder.layers.1.linear2.weight")
    with pytest.raises(CellFailed, match=r"transformer_encoder\.layers\.1\.linear2\.weight"):
        _embed(_uce(broken), cells)
    broken = build_uce(tmp_path / "c", drop="decoder.3.weight")
    with pytest.raises(CellFailed, match=r"lacks 'decoder\.3\.weight'"):
        _embed(_uce(broken), cells)


def test_missing_or_partial_folder_skips_with_expected_files(tmp_path, cells):
    with pytest.raises(CellSkipped, match="4layer_model.torch or 33l_8ep_1024t_1280.torch, species_chrom.csv, "
                                          "species_offsets.pkl or species_offsets.json, protein_embeddings/Homo_sapiens"):
        _embed(UCE(), cells)
    folder = build_uce(tmp_path / "u")
    with pytest.raises(CellSkipped, match="lacks 33l_8ep_1024t_1280.torch"):
        _embed(_uce(folder, n_layers=33), cells)
    (folder / "species_chrom.csv").unlink()
    with pytest.raises(CellSkipped, match="lacks species_chrom.csv"):
        _embed(_uce(folder), cells)


def test_variants_offsets_json_and_legacy_torch_files(tmp_path, cells):
    folder = build_uce(tmp_path / "u33", weights="33l_8ep_1024t_1280.torch", offsets_json=True, legacy=True)
    a = _uce(folder, mask="bool")
    assert a.variant() == "33l_8ep_1024t_1280.torch, bool mask"
    assert _embed(a, cells).shape == (cells.n_obs, 8) and a.run_info["variant"] == "2 layers (33l_8ep_1024t_1280.torch)"
    a = _uce(folder)
    assert _embed(a, cells).shape == (cells.n_obs, 8) and "batches of 25 cells" in a.run_info["mask"]  # the 33-layer default
    assert UCE().variant() == "4layer_model.torch or 33l_8ep_1024t_1280.torch, float mask"


def test_wrong_format_folders(tmp_path, cells):
    scgpt = build_scgpt(tmp_path / "scgpt")
    with pytest.raises(CellSkipped, match="lacks 4layer_model.torch or 33l"):
        _embed(_uce(scgpt), cells)
    folder = build_uce(tmp_path / "u")
    (folder / "4layer_model.torch").write_bytes((scgpt / "best_model.pt").read_bytes())
    with pytest.raises(CellFailed, match="is it a UCE state dict"):
        _embed(_uce(folder), cells)
    folder = build_uce(tmp_path / "v")
    (folder / "species_chrom.csv").write_text("gene,chrom\nA,1\n")
    with pytest.raises(CellFailed, match="lacks the columns"):
        _embed(_uce(folder), cells)


def test_wrong_namespace_fails_naming_it(uce_dir):
    ad = toy_counts(genes=[f"ENSG{i:011d}" for i in range(54)])
    with pytest.raises(CellFailed, match="expects HGNC gene symbols.*look like Ensembl ids"):
        _embed(_uce(uce_dir), ad)


def test_non_integer_counts_zero_cells_and_collapsed_duplicates(uce_dir, cells):
    ad = cells.copy()
    ad.X = ad.X * 0.5
    with pytest.raises(CellFailed, match="raw integer counts"):
        _embed(_uce(uce_dir), ad)
    ad = cells.copy()
    ad.X = sp.csr_matrix(sp.diags(np.r_[0.0, np.ones(ad.n_obs - 1)]) @ ad.X)  # cell 0 has no counts
    a = _uce(uce_dir, mask="bool")
    X = _embed(a, ad)
    assert np.isfinite(X).all() and a.run_info["cells_without_genes"] == 1
    ad = _cell({"GENE1": 2, "gene1": 3, "GENE2": 1})  # upper-casing collapses two columns: summed
    a = _uce(uce_dir)
    assert _embed(a, ad).shape == (1, 8) and a.run_info["genes_collapsed"] == 1


def test_gene_embeddings_are_table_rows(uce_dir):
    a = UCE({"checkpoint": str(uce_dir)})
    E = a.gene_embeddings(["GENE0", "gene5", "GENE47", "NOPE"])
    table = a.module.pe_embedding.weight.detach().numpy()
    np.testing.assert_array_equal(E[:3], table[[ROW["GENE0"], ROW["GENE5"], ROW["GENE47"]]])
    assert np.isnan(E[3]).all()
