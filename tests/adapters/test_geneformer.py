import numpy as np
import pytest
from tiny_ckpt import ENSEMBL, build_geneformer, toy_counts

from scfm_bench.adapters.geneformer import Geneformer, rank_tokens
from scfm_bench.embed import embed
from scfm_bench.exceptions import CellFailed, CellSkipped


def _embed(adapter, ad, batch_size=64):
    return embed(adapter, ad, dataset_sha256="t", cache=None, batch_size=batch_size).X


@pytest.fixture(scope="module")
def gf_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("gf")
    return {"v1": build_geneformer(root / "v1", v2=False, bin_format=True), "v2": build_geneformer(root / "v2", v2=True)}


@pytest.fixture
def ens_adata():
    return toy_counts(n_cells=20, genes=ENSEMBL)


def test_rank_tokens_hand_computed():
    """counts [4, 0, 2, 6], n_counts 20, medians [2, 1, 0.5, 3] -> normalised [1000, 0, 2000, 1000]:
    gene 2 first, then the tie (genes 0, 3) in argsort order; V2 wraps with <cls>/<eos> and truncates."""
    vals, ids, med = np.array([4.0, 0, 2, 6]), np.array([10, 11, 12, 13]), np.array([2.0, 1, 0.5, 3])
    assert rank_tokens(vals, ids, 20.0, med, input_size=2048, cls_id=None, eos_id=None).tolist() == [12, 10, 13]
    assert rank_tokens(vals, ids, 20.0, med, input_size=2, cls_id=None, eos_id=None).tolist() == [12, 10]
    assert rank_tokens(vals, ids, 20.0, med, input_size=4, cls_id=2, eos_id=3).tolist() == [2, 12, 10, 3]


@pytest.mark.parametrize("v", ["v1", "v2"])
def test_embeddings_deterministic_batch_and_order_independent(gf_dirs, ens_adata, v):
    a = Geneformer({"checkpoint": str(gf_dirs[v])})
    X1 = _embed(a, ens_adata)
    X2 = _embed(Geneformer({"checkpoint": str(gf_dirs[v])}), ens_adata, batch_size=3)
    assert X1.shape == (ens_adata.n_obs, 32)
    np.testing.assert_allclose(X1, X2, atol=1e-5)
    perm = np.random.default_rng(0).permutation(ens_adata.n_obs)
    X3 = _embed(Geneformer({"checkpoint": str(gf_dirs[v])}), ens_adata[perm].copy(), batch_size=5)
    np.testing.assert_allclose(X1[perm], X3, atol=1e-5)
    assert a.run_info["variant"] == v.upper()
    assert a.run_info["pooling"].startswith("mean" if v == "v1" else "cls")
    assert a.run_info["genes_collapsed"] == 1  # ENSG..39 is summed into ENSG..38


def test_pooling_and_layer_match_manual_forward(gf_dirs, ens_adata):
    """V2 default = CLS of the penultimate layer; mean excludes <cls>/<eos>; layer=0 is the last layer."""
    import torch

    a = Geneformer({"checkpoint": str(gf_dirs["v2"])})
    a.load("cpu")
    prep = a.prepare(ens_adata)
    t = torch.tensor(prep.dataset[0])[None]
    with torch.inference_mode():
        hs = a.model(input_ids=t, attention_mask=torch.ones_like(t), output_hidden_states=True).hidden_states
    X = _embed(Geneformer({"checkpoint": str(gf_dirs["v2"])}), ens_adata)
    np.testing.assert_allclose(X[0], hs[1][0, 0].numpy(), atol=1e-5)
    Xm = _embed(Geneformer({"checkpoint": str(gf_dirs["v2"]), "pool": "mean", "layer": 0}), ens_adata)
    np.testing.assert_allclose(Xm[0], hs[2][0, 1:-1].mean(0).numpy(), atol=1e-5)


def test_truncation_to_input_size(tmp_path, ens_adata):
    d = build_geneformer(tmp_path / "short", v2=True, max_pos=8)
    a = Geneformer({"checkpoint": str(d)})
    a.load("cpu")
    prep = a.prepare(ens_adata)
    assert max(prep.lengths) == 8 and all(t[0] == 2 and t[-1] == 3 for t in prep.dataset)
    assert a.run_info["cells_truncated"] > 0


def test_symbols_mapped_through_name_table(gf_dirs):
    ad = toy_counts(n_cells=10, genes=[f"GENE{i}" for i in range(40)])
    a = Geneformer({"checkpoint": str(gf_dirs["v2"])})
    X = _embed(a, ad)
    np.testing.assert_allclose(X, _embed(Geneformer({"checkpoint": str(gf_dirs["v2"])}), toy_counts(n_cells=10, genes=ENSEMBL)),
                               atol=1e-5)


def test_wrong_namespace_and_missing_files(gf_dirs, tmp_path):
    ad = toy_counts(n_cells=10, genes=[f"OTHER{i}" for i in range(40)])
    with pytest.raises(CellFailed, match="expects Ensembl gene ids.*look like gene symbols"):
        _embed(Geneformer({"checkpoint": str(gf_dirs["v2"])}), ad)
    with pytest.raises(CellSkipped, match=r"token_dictionary_gc\*\.pkl"):
        (tmp_path / "bare").mkdir()
        (tmp_path / "bare" / "config.json").write_text("{}")
        (tmp_path / "bare" / "model.safetensors").write_text("")
        _embed(Geneformer({"checkpoint": str(tmp_path / "bare")}), ad)


def test_missing_weight_raises_naming_it(tmp_path, ens_adata):
    d = build_geneformer(tmp_path / "broken", v2=False, drop="bert.encoder.layer.1.output.dense.weight")
    with pytest.raises(CellFailed, match=r"encoder\.layer\.1\.output\.dense\.weight"):
        _embed(Geneformer({"checkpoint": str(d)}), ens_adata)


def test_scgpt_folder_given_to_geneformer(tmp_path, ens_adata):
    from tiny_ckpt import build_scgpt

    d = build_scgpt(tmp_path / "scgpt")
    with pytest.raises(CellSkipped, match="config.json"):
        _embed(Geneformer({"checkpoint": str(d)}), ens_adata)


def test_cls_pool_on_v1_fails(gf_dirs, ens_adata):
    with pytest.raises(CellFailed, match="V2"):
        _embed(Geneformer({"checkpoint": str(gf_dirs["v1"]), "pool": "cls"}), ens_adata)


def test_gene_embeddings(gf_dirs):
    E = Geneformer({"checkpoint": str(gf_dirs["v1"])}).gene_embeddings([ENSEMBL[0], "nope"])
    assert E.shape == (2, 32) and np.isfinite(E[0]).all() and np.isnan(E[1]).all()
