"""Cell Ontology loading, graph queries, mapping and the RWR/DCA kernels (spec §3.2, §3.4b, §4.2)."""

import json

import numpy as np
import pytest
from scipy.spatial.distance import pdist
from ontology_toy import DAG_GADGET, TEXT_VECTORS, TOY_EDGES, pagerank_profiles

from scfm_bench.exceptions import DataError
from scfm_bench.ontology import CellOntology, load_ontology, map_to_ontology, shipped_cl_file
from scfm_bench.ontology.rwr import adjacency, dca, dca_svds, rwr, rwr_dense


@pytest.fixture(scope="module")
def cl():
    return load_ontology()


def test_shipped_cl_is_newest_and_follows_the_node_convention(cl):
    assert shipped_cl_file().name == "CL-ontology-v2026-03-26.json.zst"
    assert cl.version == "v2026-03-26" and len(cl.sha256) == 64
    assert len(cl.nodes) == 3316  # spec §3.4b
    assert len(cl.edges) == 4633 and cl.roots == {"CL:0000000"}
    assert "CL:0000084" in cl.ancestors("CL:0000624")  # CD4 T cell is a T cell
    assert "CL:0000624" in cl.descendants("CL:0000084")
    assert cl.distance("CL:0000624", "CL:0000000") is not None and cl.distance("CL:0000000", "CL:0000624") is None


def test_pronto_view_has_names_and_synonyms(cl):
    term = cl.pronto["CL:0000540"]
    assert term.name == "neuron" and "nerve cell" in {s.description for s in term.synonyms}


def test_mapping_ids_names_synonyms_deprecated_and_unmapped(cl, caplog):
    m = map_to_ontology(["CL:0000236", "b cell", "nerve cell", "CL:0000003", "CL:0000002", "CL:9999999", "foo", "foo"], cl)
    assert list(m.ids[:4]) == ["CL:0000236", "CL:0000236", "CL:0000540", "CL:0000000"]
    assert m.replaced == {"CL:0000003": "CL:0000000"}  # deprecated, replaced_by a CL term
    assert m.unmapped == {"CL:0000002": 1, "CL:9999999": 1, "foo": 2}  # replaced by a non-CL term / unknown / a name
    assert m.n_unmapped_cells == 4
    assert "deprecated" in caplog.text


def test_user_json_and_obo_files_give_the_same_graph(tmp_path):
    doc = {"CL:0": {"label": "root", "ancestors": {}}, "CL:1": {"label": "a", "ancestors": {"CL:0": 1}},
           "CL:2": {"label": "b", "synonyms": ["bee"], "ancestors": {"CL:1": 1, "CL:0": 2}},
           "CL:3": {"label": "old", "ancestors": {}, "deprecated": True, "replaced_by": "CL:2"}}
    (tmp_path / "cl.json").write_text(json.dumps(doc))
    from_json = load_ontology(tmp_path / "cl.json")
    (tmp_path / "cl.obo").write_text(from_json.to_obo())
    from_obo = load_ontology(tmp_path / "cl.obo")
    assert from_json.edges == from_obo.edges == [("CL:1", "CL:0"), ("CL:2", "CL:1")]
    assert from_obo.resolve("CL:3") == "CL:2" and map_to_ontology(["bee"], from_obo).ids[0] == "CL:2"
    with pytest.raises(DataError, match="does not exist"):
        load_ontology(tmp_path / "missing.obo")


def test_lcad_pairs_oracle():
    """O-LCAD1/2: per-pair LCAD, the multi-LCA pair with the min-over-minimal-ancestors rule."""
    onto = CellOntology.from_edges(TOY_EDGES + DAG_GADGET)
    pairs = [("CL:5", "CL:6", 1), ("CL:5", "CL:4", 2), ("CL:5", "CL:7", 3), ("CL:3", "CL:5", 0), ("CL:5", "CL:3", 1),
             ("CL:7", "CL:2", 1), ("CL:7", "CL:8", 1), ("T", "S", 1)]
    assert [onto.lcad(t, p) for t, p, _ in pairs] == [d for *_, d in pairs]
    assert onto.minimal_common_ancestors("T", "S") == ["P1", "P2"]
    assert CellOntology.from_edges([("a", "r1"), ("b", "r2")]).lcad("a", "b") is None  # no common ancestor


def test_rwr_equals_reference_iteration_on_toy():
    onto = CellOntology.from_edges(TOY_EDGES)
    for vectors in (None, {k: np.array(v, float) for k, v in TEXT_VECTORS.items()}):
        nodes, W = adjacency(onto, vectors)
        np.testing.assert_allclose(rwr(W).profiles(), rwr_dense(W), rtol=0, atol=1e-9)
        for dim in (3, 4):
            np.testing.assert_allclose(pdist(dca(rwr(W), dim)), pdist(dca_svds(rwr_dense(W), dim)), atol=1e-9)
    assert rwr(W).profiles()[nodes.index("CL:5")].round(6).tolist() == [
        0.001908, 0.02358, 0.000184, 0.226268, 0.002531, 0.722763, 0.022466, 0.000067, 0.000233]  # O-RWR spec §3.5


def test_rwr_equals_networkx_personalised_pagerank_on_toy():
    onto = CellOntology.from_edges(TOY_EDGES)
    vec = {k: np.array(v, float) for k, v in TEXT_VECTORS.items()}
    cosine = lambda a, b: float(vec[a] @ vec[b] / np.linalg.norm(vec[a]) / np.linalg.norm(vec[b]))  # noqa: E731
    for vectors, weight in ((None, None), (vec, cosine)):
        nodes, W = adjacency(onto, vectors)
        pr = pagerank_profiles(TOY_EDGES, nodes, nodes, weight)
        np.testing.assert_allclose(rwr(W, tol=1e-13, max_iter=500).profiles(), pr, rtol=0, atol=1e-10)
        # the reference stops at ||Q_k - Q_{k-1}||_F < 1e-4: (1 - rst)P is a contraction by 0.3 in each row's
        # l1 norm, so a row is off the fixed point by at most 0.3/0.7 * sqrt(n) * 1e-4 in l1 (1.3e-4 here)
        gap = np.abs(rwr(W).profiles() - pr).sum(axis=1)
        assert gap.max() < 0.3 / 0.7 * np.sqrt(len(nodes)) * 1e-4


def test_rwr_equals_networkx_personalised_pagerank_on_a_cl_subgraph(cl):
    """The T-cell branch of the shipped CL (T cell and its descendants, 172 nodes, connected through T cell)."""
    keep = set(cl.descendants("CL:0000084")) | {"CL:0000084"}
    edges = [(c, p) for c, p in cl.edges if c in keep and p in keep]
    nodes, W = adjacency(CellOntology.from_edges(edges))
    assert len(nodes) == len(keep) > 100
    sources = ["CL:0000084", "CL:0000624", "CL:0000625", nodes[-1]]  # T cell, CD4, CD8, a leaf
    pr = pagerank_profiles(edges, nodes, sources)
    Q = rwr(W, tol=1e-13, max_iter=500).profiles()[[nodes.index(s) for s in sources]]
    np.testing.assert_allclose(Q, pr, rtol=0, atol=1e-10)


def test_twins_are_lumped_and_unlumped_when_their_own_eigenvalue_is_kept():
    """Uniform toy: CL:5/CL:6 (children of CL:3 only) and CL:2/CL:8 (neighbours CL:0, CL:7) are twins.
    With 3 dims the top eigenvectors are twin-symmetric (identical vectors); the 4th eigenvalue belongs
    to a vector that tells CL:5 from CL:6, so dim 4 runs unlumped and still equals ARPACK (test above)."""
    nodes, W = adjacency(CellOntology.from_edges(TOY_EDGES))
    walk = rwr(W)
    assert len(set(walk.classes)) == 7
    assert walk.classes[nodes.index("CL:5")] == walk.classes[nodes.index("CL:6")]
    i5, i6 = nodes.index("CL:5"), nodes.index("CL:6")
    V3, V4 = dca(walk, 3), dca(walk, 4)
    assert np.array_equal(V3[i5], V3[i6]) and np.linalg.norm(V4[i5] - V4[i6]) > 0.1


def test_zero_weight_column_becomes_a_self_loop():
    W = np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], float)  # 2 and 3 are isolated, not twins
    np.testing.assert_allclose(rwr(W).profiles(), rwr_dense(W), atol=1e-12)
    assert rwr(W).profiles()[2, 2] == pytest.approx(1.0)


@pytest.mark.slow
def test_rwr_and_dca_equal_the_reference_on_full_cl(cl):
    _, W = adjacency(cl)
    walk, Q = rwr(W), rwr_dense(W)
    np.testing.assert_allclose(walk.profiles(), Q, rtol=0, atol=1e-12)  # a different stopping step would differ ~1e-5
    sample = np.random.default_rng(0).choice(len(Q), 500, replace=False)
    np.testing.assert_allclose(pdist(dca(walk, 256)[sample]), pdist(dca_svds(Q, 256)[sample]), rtol=0, atol=1e-6)
