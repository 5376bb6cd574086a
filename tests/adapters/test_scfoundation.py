import numpy as np
import pytest
import scipy.sparse as sp
from anndata import AnnData
from tiny_ckpt import build_scgpt, one_by_one, toy_counts
from tiny_scfoundation import DIM, GENES, build_scfoundation

from scfm_bench.adapters.scfoundation import ScFoundation, ScFoundationParams, tokenize_cell
from scfm_bench.embed import embed
from scfm_bench.embed.engine import forward_context, run_batches
from scfm_bench.exceptions import CellFailed, CellSkipped


def _embed(adapter, ad, batch_size=64):
    return embed(adapter, ad, dataset_sha256="t", cache=None, batch_size=batch_size).X


def _scf(folder, seed=0, **params):
    return ScFoundation({"checkpoint": str(folder), **params}, seed=seed)


@pytest.fixture(scope="module")
def scf_dir(tmp_path_factory):
    return build_scfoundation(tmp_path_factory.mktemp("scf") / "scfoundation")


def test_tokenize_hand_computed():
    """Genes at list rows [5, 1, 3, 0] with counts [2, 0, 6, 2], total 10, 10 genes in the list:
    nonzero genes in list order (rows 0, 3, 5), values log1p(count/10*1e4) = ln 2001, ln 6001, ln 2001;
    then T = 4 (t4) at row 10 and S = log10(10) = 1 at row 11."""
    v, p = tokenize_cell(np.array([5, 1, 3, 0]), np.array([2.0, 0, 6, 2]), n_genes=10, tgthighres="t4")
    assert p.tolist() == [0, 3, 5, 10, 11]
    np.testing.assert_allclose(v, [7.601402334583733, 8.699681400989514, 7.601402334583733, 4.0, 1.0], rtol=1e-7)
    # fX: T = log10(total * X); aX: T = log10(total) + X
    assert tokenize_cell(np.array([0]), np.array([20.0]), n_genes=3, tgthighres="f2")[0][-2] == pytest.approx(np.log10(40))
    assert tokenize_cell(np.array([0]), np.array([10.0]), n_genes=3, tgthighres="a5")[0][-2] == pytest.approx(6.0)
    # truncation keeps the most expressed genes (tie at 2000 -> earlier list row), still in list order
    v, p = tokenize_cell(np.array([5, 1, 3, 0]), np.array([2.0, 0, 6, 2]), n_genes=10, tgthighres="t4", max_genes=2)
    assert p.tolist() == [0, 3, 10, 11] and v[-1] == 1.0
    # a one-count cell keeps S = log10(1) = 0 (upstream would drop it)
    v, p = tokenize_cell(np.array([2]), np.array([1.0]), n_genes=3, tgthighres="t4")
    assert p.tolist() == [2, 3, 4] and v[-1] == 0.0


def test_prepare_maps_genes_onto_the_list(scf_dir):
    """var order [B, UNKNOWN, A] with counts [1, 2, 3]: the unknown gene is dropped (and not in the total, 4),
    the others follow the gene list's order; T, S at rows len(list), len(list)+1."""
    a_gene, b_gene = GENES[2], GENES[9]
    ad = AnnData(sp.csr_matrix(np.array([[1.0, 2, 3]], np.float32)))
    ad.var_names = [b_gene, "UNKNOWN", a_gene]
    m = _scf(scf_dir)
    m.load("cpu")
    values, positions = m.prepare(ad).dataset[0]
    assert positions.tolist() == [2, 9, 60, 61]
    np.testing.assert_allclose(values, [np.log(7501), np.log(2501), 4.0, np.log10(4)], rtol=1e-6)
    assert m.run_info["genes_matched"] == 2 and m.run_info["matched_count_fraction"] == pytest.approx(4 / 6)
    # two dataset genes on one listed symbol (e.g. after Ensembl -> symbol collapsing): their counts are summed
    ad.var_names = [a_gene, "UNKNOWN", a_gene]
    values, positions = m.prepare(ad).dataset[0]
    assert positions.tolist() == [2, 60, 61] and m.run_info["genes_collapsed"] == 1
    np.testing.assert_allclose(values, [np.log(10_001), 4.0, np.log10(4)], rtol=1e-6)


def test_pooling_matches_the_authors_one_cell_forward(scf_dir, counts_adata):
    """pool=all = [S, T, max, mean] of an unpadded single-cell forward (upstream's g[:,-1], g[:,-2],
    max/mean of g[:, :-2]); pool=max = max over every token; no normalisation."""
    import torch

    m = _scf(scf_dir)
    X = _embed(m, counts_adata)
    assert X.shape == (counts_adata.n_obs, 4 * DIM) and m.run_info["pooling"] == "all"
    assert np.ptp(np.linalg.norm(X, axis=1)) > 1e-3  # not L2-normalised
    v, p = m.prepare(counts_adata).dataset[5]
    with torch.inference_mode():
        g = m.module(torch.from_numpy(v)[None], torch.from_numpy(p)[None], torch.zeros(1, len(v), dtype=torch.bool))[0]
    ref = torch.cat([g[-1], g[-2], g[:-2].max(0).values, g[:-2].mean(0)]).numpy()
    np.testing.assert_allclose(X[5], ref, atol=1e-5)
    Xmax = _embed(_scf(scf_dir, pool="max"), counts_adata)
    assert Xmax.shape == (counts_adata.n_obs, DIM)
    np.testing.assert_allclose(Xmax[5], g.max(0).values.numpy(), atol=1e-5)


def test_deterministic_batch_size_and_other_cells_independent(scf_dir, counts_adata):
    X1 = _embed(_scf(scf_dir, seed=3), counts_adata)
    np.testing.assert_array_equal(X1, _embed(_scf(scf_dir, seed=3), counts_adata))
    np.testing.assert_allclose(X1, _embed(_scf(scf_dir, seed=3), counts_adata, batch_size=3), atol=1e-5)
    perm = np.random.default_rng(0).permutation(counts_adata.n_obs)
    np.testing.assert_allclose(X1[perm], _embed(_scf(scf_dir), counts_adata[perm].copy(), batch_size=5), atol=1e-5)
    np.testing.assert_allclose(X1[7:10], _embed(_scf(scf_dir), counts_adata[7:10].copy()), atol=1e-5)


def test_padded_buckets_equal_one_cell_at_a_time(scf_dir, counts_adata):
    m = _scf(scf_dir)
    m.load("cpu")
    prep = m.prepare(counts_adata)
    assert len(set(prep.lengths)) > 5  # skewed lengths: padding is exercised
    with forward_context("cpu"):  # the engine's context (torch's fused encoder path, pads masked)
        bucketed = run_batches(m, prep, 6, token_budget=120)
        plain = run_batches(m, prep, 8, bucketed=False)
    # reference: unpadded single cells through the plain (autograd) path
    one = one_by_one(m, prep)
    np.testing.assert_allclose(bucketed, one, atol=1e-5)
    np.testing.assert_allclose(plain, one, atol=1e-5)


def test_truncation_path(scf_dir, counts_adata):
    m = _scf(scf_dir, max_genes=5)
    X = _embed(m, counts_adata)
    assert np.isfinite(X).all() and m.run_info["cells_truncated"] > 0
    assert max(m.prepare(counts_adata).lengths) == 7


def test_token_modes_and_checkpoint_entries_change_the_embedding(scf_dir, counts_adata):
    X = _embed(_scf(scf_dir), counts_adata)
    for params in ({"tgthighres": "f1"}, {"tgthighres": "a5"}, {"version": "rde"}):
        assert np.abs(X - _embed(_scf(scf_dir, **params), counts_adata)).max() > 1e-4, params
    with pytest.raises(ValueError, match="tgthighres"):
        ScFoundationParams(tgthighres="x4")
    with pytest.raises(ValueError, match="X > 0"):
        ScFoundationParams(tgthighres="f0")


def test_repo_layout_and_model_dir(tmp_path, counts_adata):
    build_scfoundation(tmp_path / "models" / "scfoundation", repo_layout=True)
    m = ScFoundation({}, model_dir=tmp_path / "models")
    assert m.checkpoint_status().startswith("found")
    assert _embed(m, counts_adata).shape == (counts_adata.n_obs, 4 * DIM)


def test_missing_key_fails_naming_it(tmp_path, counts_adata):
    d = build_scfoundation(tmp_path / "b", drop="encoder.transformer_encoder.1.linear2.weight")
    with pytest.raises(CellFailed, match=r"missing keys \['encoder\.transformer_encoder\.1\.linear2\.weight'\]"):
        _embed(_scf(d), counts_adata)


def test_missing_or_partial_folder_skips_with_expected_files(tmp_path, counts_adata):
    expected = "models.ckpt or models/models.ckpt, OS_scRNA_gene_index.19264.tsv"
    with pytest.raises(CellSkipped, match=f"expected files: {expected}"):
        _embed(ScFoundation(), counts_adata)
    d = build_scfoundation(tmp_path / "partial")
    (d / "OS_scRNA_gene_index.19264.tsv").unlink()
    with pytest.raises(CellSkipped, match="lacks OS_scRNA_gene_index.19264.tsv"):
        _embed(_scf(d), counts_adata)


def test_wrong_format_folders_fail_clearly(tmp_path, scf_dir, counts_adata):
    d = build_scgpt(tmp_path / "scgpt")  # an scGPT state dict where models.ckpt belongs
    (d / "best_model.pt").rename(d / "models.ckpt")
    (d / "OS_scRNA_gene_index.19264.tsv").write_bytes((scf_dir / "OS_scRNA_gene_index.19264.tsv").read_bytes())
    with pytest.raises(CellFailed, match="no 'cell' entry with a state_dict.*scFoundation's models.ckpt"):
        _embed(_scf(d), counts_adata)
    (d / "models.ckpt").write_text("not a checkpoint")
    with pytest.raises(CellFailed, match="cannot read the checkpoint"):
        _embed(_scf(d), counts_adata)
    other = build_scfoundation(tmp_path / "other_list")  # a longer list than the weights' position table
    (other / "OS_scRNA_gene_index.19264.tsv").write_text("gene_name\tindex\n" + "".join(f"G{i}\t{i}\n" for i in range(62)))
    with pytest.raises(CellFailed, match="position table has 63 rows.*do not belong together"):
        _embed(_scf(other), counts_adata)
    (other / "OS_scRNA_gene_index.19264.tsv").write_text("symbol\tid\nA\t0\n")
    with pytest.raises(CellFailed, match="gene_name column"):
        _embed(_scf(other), counts_adata)


def test_wrong_namespace_and_non_integer_counts(scf_dir, counts_adata):
    with pytest.raises(CellFailed, match="look like Ensembl ids"):
        _embed(_scf(scf_dir), toy_counts(genes=[f"ENSG{i:011d}" for i in range(54)]))
    lower = counts_adata.copy()
    lower.var_names = [g.lower() for g in lower.var_names]  # symbols are matched case-sensitively, as upstream
    with pytest.raises(CellFailed, match="fall on its vocabulary"):
        _embed(_scf(scf_dir), lower)
    half = counts_adata.copy()
    half.X = half.X * 0.5
    with pytest.raises(CellFailed, match="raw integer counts"):
        _embed(_scf(scf_dir), half)


def test_cells_without_counts_fail_naming_them_and_one_count_cells_embed(scf_dir, counts_adata):
    ad = counts_adata.copy()
    ad.X = sp.csr_matrix(sp.diags(np.r_[0.0, np.ones(ad.n_obs - 1)]) @ ad.X)
    with pytest.raises(CellFailed, match=r"1 cells \(e.g. \['cell0'\]\) have no counts on the model's genes"):
        _embed(_scf(scf_dir), ad)
    X = ad.X.toarray()
    X[0, ad.var_names.get_loc(GENES[0])] = 1  # a single count: S = 0, one gene
    ad.X = sp.csr_matrix(X)
    assert np.isfinite(_embed(_scf(scf_dir), ad)).all()


def test_gene_embeddings_are_the_gene_position_table(scf_dir):
    m = _scf(scf_dir)
    E = m.gene_embeddings([GENES[3], "NOPE"])
    assert E.shape == (2, DIM) and np.isnan(E[1]).all()
    np.testing.assert_array_equal(E[0], m.module.pos_emb.weight[3].detach().numpy())
