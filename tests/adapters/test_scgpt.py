import numpy as np
import pytest
import scipy.sparse as sp
from tiny_ckpt import build_scgpt, one_by_one, toy_counts

from scfm_bench.adapters.scgpt import ScGPT, bin_values, tokenize_cell
from scfm_bench.embed import embed
from scfm_bench.embed.engine import run_batches
from scfm_bench.exceptions import CellFailed, CellSkipped


def _embed(adapter, ad, batch_size=64):
    return embed(adapter, ad, dataset_sha256="t", cache=None, batch_size=batch_size).X


def test_binning_hand_computed():
    """[1, 2, 4]: 50 quantile edges; 2 lies strictly between edges 24 and 25 -> bin 25; min -> 1, max -> 50."""
    rng = np.random.default_rng(0)
    assert bin_values(np.array([1.0, 2.0, 4.0]), 51, rng).tolist() == [1, 25, 50]
    # [1, 3, 3, 5]: edges 17..32 equal 3, so each tied 3 draws a bin in 18..33
    draws = np.array([bin_values(np.array([1.0, 3.0, 3.0, 5.0]), 51, np.random.default_rng(s)) for s in range(200)])
    assert (draws[:, 0] == 1).all() and (draws[:, 3] == 50).all()
    assert draws[:, 1:3].min() == 18 and draws[:, 1:3].max() == 33


def test_tokenize_cls_first_and_truncation():
    genes = np.arange(10, 20)
    ids, vals = tokenize_cell(genes, np.arange(1.0, 11.0), cls_id=99, pad_value=-2, n_bins=51, max_length=5,
                              rng=np.random.default_rng(0))
    assert ids[0] == 99 and vals[0] == -2 and len(ids) == 5
    assert set(ids[1:]) <= set(genes) and len(set(ids[1:])) == 4
    # binning happened before subsampling: bins refer to the full cell (value 10 -> bin 50)
    full = dict(zip(genes, bin_values(np.arange(1.0, 11.0), 51, np.random.default_rng(0))))
    assert all(full[g] == v for g, v in zip(ids[1:], vals[1:]))


def test_embeddings_normalised_deterministic_and_batch_independent(scgpt_dir, counts_adata):
    a = ScGPT({"checkpoint": str(scgpt_dir), "use_hvg": False}, seed=3)
    X1 = _embed(a, counts_adata, batch_size=64)
    X2 = _embed(ScGPT({"checkpoint": str(scgpt_dir), "use_hvg": False}, seed=3), counts_adata, batch_size=3)
    assert X1.shape == (counts_adata.n_obs, 16)
    np.testing.assert_allclose(np.linalg.norm(X1, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(X1, X2, atol=1e-5)
    # other cells do not matter: embedding a subset gives the same rows (cell index seeds the RNG, so keep the prefix)
    X3 = _embed(ScGPT({"checkpoint": str(scgpt_dir), "use_hvg": False}, seed=3), counts_adata[:5].copy())
    np.testing.assert_allclose(X1[:5], X3, atol=1e-5)
    X4 = _embed(ScGPT({"checkpoint": str(scgpt_dir), "use_hvg": False}, seed=4), counts_adata)
    assert np.abs(X1 - X4).max() > 1e-4  # the seed drives tie-breaking
    assert a.run_info["genes_matched"] == 54 and a.run_info["matched_count_fraction"] == 1.0


def test_output_order_is_input_order(scgpt_dir, counts_adata):
    p = {"checkpoint": str(scgpt_dir), "use_hvg": False}
    a = ScGPT(p, seed=0)
    a.load("cpu")
    prep = a.prepare(counts_adata)
    bucketed = run_batches(a, prep, 4, token_budget=40)
    one = one_by_one(a, prep)
    np.testing.assert_allclose(bucketed, one, atol=1e-5)


def test_truncation_path(scgpt_dir, counts_adata):
    a = ScGPT({"checkpoint": str(scgpt_dir), "use_hvg": False, "max_length": 8}, seed=0)
    X = _embed(a, counts_adata)
    assert np.isfinite(X).all() and a.run_info["cells_truncated"] > 0


def test_impl_keys_load_the_same(tmp_path, counts_adata):
    fa1 = build_scgpt(tmp_path / "fa1")
    impl = build_scgpt(tmp_path / "impl", impl=True)
    X1 = _embed(ScGPT({"checkpoint": str(fa1), "use_hvg": False}), counts_adata)
    X2 = _embed(ScGPT({"checkpoint": str(impl), "use_hvg": False}), counts_adata)
    np.testing.assert_allclose(X1, X2, atol=1e-6)


def test_missing_key_raises_naming_it(tmp_path, counts_adata):
    broken = build_scgpt(tmp_path / "b", drop="transformer_encoder.layers.1.self_attn.Wqkv.weight")
    with pytest.raises(CellFailed, match=r"transformer_encoder\.layers\.1\.self_attn\.in_proj_weight"):
        _embed(ScGPT({"checkpoint": str(broken)}), counts_adata)


def test_missing_or_partial_checkpoint_skips_with_expected_files(tmp_path, scgpt_dir, counts_adata):
    with pytest.raises(CellSkipped, match="best_model.pt, vocab.json, args.json"):
        _embed(ScGPT(), counts_adata)
    (scgpt_dir / "vocab.json").unlink()
    with pytest.raises(CellSkipped, match="lacks vocab.json"):
        _embed(ScGPT({"checkpoint": str(scgpt_dir)}), counts_adata)


def test_model_dir_setting_is_used(tmp_path, counts_adata):
    build_scgpt(tmp_path / "models" / "scgpt")
    a = ScGPT({"use_hvg": False}, model_dir=tmp_path / "models")
    assert a.checkpoint_status().startswith("found")
    assert _embed(a, counts_adata).shape == (counts_adata.n_obs, 16)


def test_wrong_namespace_fails_with_guess(scgpt_dir):
    ad = toy_counts(genes=[f"ENSG{i:011d}" for i in range(54)])
    with pytest.raises(CellFailed, match="look like Ensembl ids"):
        _embed(ScGPT({"checkpoint": str(scgpt_dir)}), ad)


def test_ensembl_var_names_with_symbol_column_are_mapped(scgpt_dir, counts_adata):
    ad = counts_adata.copy()
    ad.var["gene_symbol"] = ad.var_names.to_numpy()
    ad.var_names = [f"ENSG{i:011d}" for i in range(ad.n_vars)]
    a = ScGPT({"checkpoint": str(scgpt_dir), "use_hvg": False}, seed=1)
    X = _embed(a, ad)
    np.testing.assert_allclose(X, _embed(ScGPT({"checkpoint": str(scgpt_dir), "use_hvg": False}, seed=1), counts_adata), atol=1e-6)
    assert a.run_info["gene_id_source"] == "var['gene_symbol']"


def test_non_integer_counts_and_zero_cells(scgpt_dir, counts_adata):
    ad = counts_adata.copy()
    ad.X = ad.X * 0.5
    with pytest.raises(CellFailed, match="raw integer counts"):
        _embed(ScGPT({"checkpoint": str(scgpt_dir)}), ad)
    ad = counts_adata.copy()
    ad.X = sp.diags(np.r_[0.0, np.ones(ad.n_obs - 1)]) @ ad.X  # cell 0 has no counts
    a = ScGPT({"checkpoint": str(scgpt_dir), "use_hvg": False})
    X = _embed(a, ad)
    assert np.isfinite(X[0]).all() and a.run_info["cells_without_genes"] == 1


def test_wrong_format_folder(tmp_path, counts_adata):
    d = tmp_path / "gf"
    d.mkdir()
    for f in ("best_model.pt", "vocab.json", "args.json"):
        (d / f).write_text("{}")
    with pytest.raises(CellFailed, match="scgpt"):
        _embed(ScGPT({"checkpoint": str(d)}), counts_adata)


def test_gene_embeddings(scgpt_dir):
    a = ScGPT({"checkpoint": str(scgpt_dir)})
    E = a.gene_embeddings(["GENE0", "NOPE"])
    assert E.shape == (2, 16) and np.isfinite(E[0]).all() and np.isnan(E[1]).all()


def test_data_parallel_shards_equal_one_device(scgpt_dir, counts_adata):
    p = {"checkpoint": str(scgpt_dir), "use_hvg": False}
    one = embed(ScGPT(p, seed=1), counts_adata, dataset_sha256="t", cache=None, batch_size=4).X
    two = embed(ScGPT(p, seed=1), counts_adata, dataset_sha256="t", cache=None, batch_size=4, device="cpu,cpu").X
    np.testing.assert_allclose(one, two, atol=1e-5)
