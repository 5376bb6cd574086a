"""Contract tests over every registered metric, adapter and task."""

import math

import numpy as np
import pytest

from scfm_bench.metrics import MetricInputs, Scored
from scfm_bench.registry import ADAPTERS, METRICS, TASKS
from scfm_bench.tasks import DirectTask, EmbeddingTask


def _one_hot(values, noise, seed):
    rng = np.random.default_rng(seed)
    cats, idx = np.unique(values, return_inverse=True)
    X = np.eye(len(cats), dtype=np.float32)[idx] * 4.0
    return X + rng.normal(scale=noise, size=X.shape).astype(np.float32)


@pytest.fixture(scope="module")
def contract_data():
    rng = np.random.default_rng(0)
    n = 360  # 120 cells per batch: scGraph's reference needs batches of >= 100 cells
    labels = np.repeat([f"t{i}" for i in range(4)], n // 4)
    batch = rng.permutation(np.array([f"b{i % 3}" for i in range(n)]))
    perfect = _one_hot(labels, 0.3, 1)  # label structure, no batch signal
    random = rng.normal(size=perfect.shape).astype(np.float32)
    batchy = _one_hot(batch, 0.3, 2)  # batch structure, no label signal
    X_pre = np.hstack([perfect, batchy])  # the "unintegrated" data carries both
    return labels, batch, perfect, random, batchy, X_pre


# Cell Ontology ids for the four contract labels (two T cells, a B cell, a monocyte).
CL_IDS = {"t0": "CL:0000624", "t1": "CL:0000625", "t2": "CL:0000236", "t3": "CL:0000576"}


def _prediction_inputs(X, labels):
    """Metrics on predictions get a leave-one-out 1-NN prediction from the embedding under test."""
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(n_neighbors=2).fit(X, labels)
    idx = knn.kneighbors(X, return_distance=False)[:, 1]
    return labels[idx]


def _property(labels):
    """A per-cell numeric property that follows the cell types (smooth over the perfect embedding)."""
    return {"type_score": np.unique(labels, return_inverse=True)[1] + np.random.default_rng(6).normal(scale=0.1, size=len(labels))}


def _expression(labels, seed):
    """Log-normalised counts drawn from per-type programmes (mean counts of 60 genes); returns both."""
    rng = np.random.default_rng(seed)
    programmes = rng.gamma(1.0, 2.0, size=(4, 60))
    _, idx = np.unique(labels, return_inverse=True)
    return np.log1p(rng.poisson(programmes[idx])).astype(np.float32), programmes


def _ontology_perfect(labels, seed):
    """Cells at points whose distances are the types' shortest-path distances in the undirected Cell Ontology
    graph, computed here with networkx from the ontology's edges (classical MDS of that distance matrix),
    plus noise. Independent of the metric's RWR/DCA: only the ontology is shared."""
    import networkx as nx

    from scfm_bench.ontology import load_ontology

    graph = nx.Graph(load_ontology().edges)
    types = sorted(CL_IDS)
    D = np.array([[nx.shortest_path_length(graph, CL_IDS[a], CL_IDS[b]) for b in types] for a in types], float)
    J = np.eye(len(types)) - 1 / len(types)
    w, v = np.linalg.eigh(-0.5 * J @ D**2 @ J)
    coords = v * np.sqrt(np.clip(w, 0, None))
    _, idx = np.unique(labels, return_inverse=True)
    return coords[idx] + np.random.default_rng(seed).normal(scale=0.3, size=(len(labels), len(types)))


# outputs that describe a metric's errors rather than grade them: range-checked only (lcad's fractions of
# errors predicting an ancestor / a descendant of the truth; a good embedding has fewer errors, not other kinds)
DESCRIPTIVE = {("lcad", "frac_pred_ancestor"), ("lcad", "frac_pred_descendant"),
               ("term_auprc", "prevalence")}  # the chance level reported beside AUPRC, not a score


@pytest.mark.parametrize("key", METRICS.keys())
def test_metric_contract(key, contract_data):
    """Finite values inside the declared range; a good embedding beats a bad one in the declared direction,
    on every output separately.

    Bio metrics: one-hot labels + noise vs Gaussian noise. Batch metrics reward noise (it is perfectly
    mixed), so there the bad embedding is one that encodes the batch instead. The two scGraph metrics
    compare centroid distances with a reference, so their good embedding is built from what the reference
    stands for, without the metric's code: the ontology's graph distances (scgraph_ontorwr) or the type
    programmes the expression was drawn from (scgraph).
    """
    labels, batch, perfect, random, batchy, X_pre = contract_data
    m = METRICS.get(key)
    bad = batchy if m.spec.family == "batch" else random
    scores = []
    if "perturbation" in m.spec.inputs:  # scored on pseudobulk predictions, not on a cell embedding
        inputs = [MetricInputs(X=np.empty(0), perturbation=pe) for pe in _perturbation_good_bad()]
    elif "go_labels" in m.spec.inputs:  # gene_function: GO-term scores or gene embeddings
        inputs = _gene_function_good_bad()
    else:
        expression, programmes = _expression(labels, 3)
        if key == "scgraph_ontorwr":
            perfect = _ontology_perfect(labels, 4)
            bad = np.random.default_rng(5).normal(scale=perfect.std(), size=perfect.shape)
        elif key == "scgraph":
            _, idx = np.unique(labels, return_inverse=True)
            perfect = np.log1p(programmes)[idx] + np.random.default_rng(4).normal(scale=0.3, size=(len(labels), 60))
        ontology_ids = np.array([CL_IDS[t] for t in labels])
        inputs = []
        for X in (perfect, bad):
            pred = _prediction_inputs(X, labels)
            inputs.append(MetricInputs(X=X, labels=labels, batch=batch, X_pre=X_pre, knn_method="exact",
                                       expression=expression, ontology_ids=ontology_ids, continuous=_property(labels),
                                       predictions=np.array([CL_IDS[t] for t in pred])
                                       if "ontology_ids" in m.spec.inputs else pred))
    for inp in inputs:
        out = m(inp)
        out = out.values if isinstance(out, Scored) else out
        out = out if isinstance(out, dict) else {key: out}
        lo, hi = m.spec.range
        for name, v in out.items():  # perturbation metrics: one value per test perturbation, compared by their mean
            for x in np.ravel(v):
                assert math.isfinite(x) and lo - 1e-9 <= x <= hi + 1e-9, f"{key}.{name}: {x} outside {m.spec.range}"
        scores.append({name: float(np.mean(v)) for name, v in out.items()})
    good, worse = scores
    assert good.keys() == worse.keys()
    graded = [k for k in good if (key, k) not in DESCRIPTIVE]
    assert graded
    for k in graded:
        better = good[k] > worse[k] if m.spec.higher_is_better else good[k] < worse[k]
        assert better, f"{key}.{k}: good {good[k]} vs bad {worse[k]}"


def _perturbation_good_bad():
    """Per-perturbation truth around a reference; good = truth + small noise, bad = reference + noise."""
    from scfm_bench.metrics import PerturbationEval

    rng = np.random.default_rng(0)
    n, g = 12, 60
    control, shift = rng.normal(size=g), rng.normal(scale=0.3, size=g)
    truth = control + shift + rng.normal(size=(n, g))
    ref = truth.mean(0)
    mask = np.ones((n, g), dtype=bool)
    de = np.argsort(-np.abs(truth - control), axis=1)[:, :20]
    common = dict(truth=truth, control=control, reference=ref, hvg=mask, shared_hvg=mask[0], top_expressed=mask, de=de)
    good = truth + rng.normal(scale=0.1, size=truth.shape)
    bad = ref + rng.normal(scale=0.5, size=truth.shape)
    return PerturbationEval(pred=good, **common), PerturbationEval(pred=bad, **common)


def _gene_function_good_bad():
    """Genes x terms labels; good = labels + small noise (as scores and as embedding), bad = noise."""
    rng = np.random.default_rng(0)
    labels = rng.random((200, 8)) < 0.15
    labels[np.arange(200), rng.integers(0, 8, 200)] = True  # every gene has a term
    good = np.clip(labels * 0.7 + rng.uniform(0, 0.3, labels.shape), 0, 1)
    bad = rng.uniform(size=labels.shape)
    return [MetricInputs(X=labels * 4.0 + rng.normal(scale=0.3, size=labels.shape), go_labels=labels, go_scores=good),
            MetricInputs(X=rng.normal(size=labels.shape), go_labels=labels, go_scores=bad)]


@pytest.mark.parametrize("key", list(TASKS.keys()))
def test_task_declares_one_protocol(key):
    """The runner dispatches on the protocol: each task is an EmbeddingTask or a DirectTask, and
    implements that protocol's methods itself."""
    cls = TASKS.get(key)
    assert issubclass(cls, EmbeddingTask) != issubclass(cls, DirectTask), cls
    own = ("run",) if issubclass(cls, EmbeddingTask) else ("load", "check_models", "run_direct")
    base = EmbeddingTask if issubclass(cls, EmbeddingTask) else DirectTask
    assert all(getattr(cls, m) is not getattr(base, m) for m in own), f"{key} lacks one of {own}"


@pytest.mark.parametrize("key", [k for k in TASKS.keys() if issubclass(TASKS.get(k), EmbeddingTask)])
def test_task_contract(key, contract_data):
    from anndata import AnnData

    from scfm_bench.config import load_suite, packaged_suite_dir
    from scfm_bench.tasks import TaskData

    labels, batch, perfect, random, _, X_pre = contract_data
    task_cls = TASKS.get(key)
    suite = load_suite(packaged_suite_dir()).metric_suites[task_cls.default_suite]
    ad = AnnData(_expression(labels, 3)[0])
    ad.obsm["X_pca"] = X_pre
    data = TaskData(ad, labels, batch, np.array([CL_IDS[t] for t in labels]), continuous=_property(labels))
    params = task_cls.Params(knn_method="exact")
    primary = {}
    for name, X in (("perfect", perfect), ("random", random)):
        outcomes = {o.id: o for o in task_cls().run(data, X, params=params, seed=0, suite=suite)}
        assert all(o.status == "ok" for o in outcomes.values()), [o.reason for o in outcomes.values() if o.reason]
        primary[name] = outcomes[task_cls.primary_id(suite, params)].value
    assert primary["perfect"] > primary["random"]


@pytest.mark.parametrize("key", [k for k in ADAPTERS.keys() if k != "precomputed"])
def test_adapter_contract(key, tiny_preprocessed):
    """Every adapter yields one finite, non-constant row per cell, deterministically for a seed."""
    from scfm_bench.embed import embed

    from scfm_bench.adapters._base import GeneAdapter
    from scfm_bench.exceptions import CellSkipped, ConfigError

    cls = ADAPTERS.get(key)
    if issubclass(cls, GeneAdapter):  # embeds genes only: refuses cells up front, genes deterministically
        with pytest.raises(ConfigError, match="gene_function"):
            cls({}, seed=0).check(tiny_preprocessed)
        genes = list(tiny_preprocessed.var_names[:20])
        a, b = (cls({}, seed=0).gene_embeddings(genes, adata=tiny_preprocessed) for _ in range(2))
        assert a.shape[0] == len(genes) and a.shape[1] >= 2 and np.isfinite(a).all()
        np.testing.assert_array_equal(a, b)
        return
    if cls.kind == "scfm":  # weights cannot ship: without a checkpoint the cell is skipped, never a crash
        with pytest.raises(CellSkipped, match="expected files"):  # (embeddings: tests/adapters, tiny checkpoints)
            embed(cls({}, seed=0), tiny_preprocessed, dataset_sha256="t", cache=None)
        return
    params = {"scvi": {"max_epochs_cap": 2},  # scanvi: labels visible only in a reference batch (else skipped)
              "scanvi": {"max_epochs_cap": 2, "scanvi_max_epochs": 2, "reference_batches": ["batch_0"]}}.get(key, {})
    a = embed(cls(params, seed=0), tiny_preprocessed, dataset_sha256="t", cache=None).X
    b = embed(cls(params, seed=0), tiny_preprocessed, dataset_sha256="t", cache=None).X
    assert a.shape[0] == tiny_preprocessed.n_obs and a.shape[1] >= 2
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
