import numpy as np
import pytest
from anndata import AnnData

from scfm_bench.adapters import Adapter, Prepared
from scfm_bench.embed import EmbeddingCache, embed, validate_embedding
from scfm_bench.embed.engine import run_batches
from scfm_bench.exceptions import CellFailed


class PerCell(Adapter):
    """A per-cell toy model: embedding = (row sum, length); records batch sizes it saw."""

    key = "toy"
    display_name = "toy"

    def __init__(self, *a, oom_above: int | None = None, **kw):
        super().__init__(*a, **kw)
        self.seen: list[int] = []
        self.oom_above = oom_above

    def prepare(self, adata):
        rows = [np.asarray(adata.X[i]).ravel() for i in range(adata.n_obs)]
        lengths = [int((r > 0).sum()) for r in rows]
        return Prepared(dataset=rows, collate=lambda items: np.stack(items), n_cells=adata.n_obs, lengths=lengths)

    def embed_batch(self, batch):
        if self.oom_above is not None and len(batch) > self.oom_above:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        self.seen.append(len(batch))
        return np.stack([batch.sum(1), (batch > 0).sum(1)], axis=1)


def toy_adata(n=37, seed=0):
    rng = np.random.default_rng(seed)
    return AnnData(rng.poisson(0.5, size=(n, 20)).astype(np.float32))


def test_bucketed_batches_restore_order():
    ad = toy_adata()
    X = run_batches(PerCell(), PerCell().prepare(ad), batch_size=8)
    np.testing.assert_allclose(X[:, 0], np.asarray(ad.X).sum(1))
    np.testing.assert_allclose(X[:, 1], (np.asarray(ad.X) > 0).sum(1))


def test_oom_backoff_halves_batch_and_retries(caplog):
    ad = toy_adata()
    model = PerCell(oom_above=5)
    X = run_batches(model, model.prepare(ad), batch_size=16)
    assert max(model.seen) <= 5 and sum(model.seen) == ad.n_obs
    np.testing.assert_allclose(X[:, 0], np.asarray(ad.X).sum(1))
    assert "out of memory" in caplog.text


def test_non_oom_errors_propagate():
    class Broken(PerCell):
        def embed_batch(self, batch):
            raise ValueError("bad tensor")

    with pytest.raises(ValueError, match="bad tensor"):
        run_batches(Broken(), Broken().prepare(toy_adata()), batch_size=4)


@pytest.mark.parametrize(
    "X, match",
    [
        (np.full((5, 3), np.nan), "non-finite"),
        (np.ones((5, 3)), "constant"),
        (np.zeros((4, 3)), "4 rows for 5 cells"),
        (np.zeros(5), "shape"),
    ],
)
def test_validation_rejects_garbage(X, match):
    with pytest.raises(CellFailed, match=match):
        validate_embedding(X, 5, "m")


def test_cache_roundtrip_and_key(tmp_path):
    ad = toy_adata()
    cache = EmbeddingCache(tmp_path)
    first = embed(PerCell(seed=1), ad, dataset_sha256="abc", cache=cache)
    again = embed(PerCell(seed=1), ad, dataset_sha256="abc", cache=cache)
    other_seed = embed(PerCell(seed=2), ad, dataset_sha256="abc", cache=cache)
    assert not first.cached and again.cached and not other_seed.cached
    np.testing.assert_array_equal(first.X, again.X)
    assert first.peak_ram_mb > 0 and first.embed_s >= 0
    assert not list(tmp_path.glob("*.tmp*")), "no temporary files left behind"


def test_plan_batches_token_budget_and_plain():
    from scfm_bench.embed.engine import plan_batches

    lengths = [5, 100, 7, 90, 3, 50]
    batches = plan_batches(lengths, batch_size=4, token_budget=200)
    # longest first; a batch holds at most budget // longest items
    assert [b.tolist() for b in batches] == [[1, 3], [5, 2, 0, 4]]
    assert sorted(np.concatenate(batches).tolist()) == list(range(6))
    assert [b.tolist() for b in plan_batches(lengths, 4, 200, bucketed=False)] == [[0, 1, 2, 3], [4, 5]]


def test_oom_backoff_with_token_budget_replans():
    ad = toy_adata(n=30)
    model = PerCell(oom_above=3)
    X = run_batches(model, model.prepare(ad), batch_size=16, token_budget=10_000)
    assert max(model.seen) <= 3 and sum(model.seen) == ad.n_obs
    np.testing.assert_allclose(X[:, 0], np.asarray(ad.X).sum(1))


def test_forward_context_is_fp32_inference_on_cpu():
    import torch

    from scfm_bench.embed.engine import forward_context

    with forward_context("cpu") as precision:
        assert precision == "fp32" and torch.is_inference_mode_enabled()
        assert not torch.is_autocast_enabled("cuda")


def test_shard_items_balance_tokens_and_cover_every_item():
    from scfm_bench.embed.engine import shard_items

    lengths = [50, 3, 7, 40, 1, 9, 30, 12]
    shards = shard_items(lengths, 3)
    assert sorted(np.concatenate(shards).tolist()) == list(range(len(lengths)))
    assert all((np.diff(s) > 0).all() for s in shards)  # input order inside a shard
    loads = [sum(lengths[i] for i in s) for s in shards]
    assert max(loads) - min(loads) <= max(lengths)  # greedy longest-first bound


def test_data_parallel_shards_equal_single_device(tmp_path):
    """Two 'devices' (both CPU here; CUDA GPUs on a multi-GPU node): each replica embeds a shard in its
    own thread, and the rows come back in input order, equal to a single-device run."""

    class Torchy(PerCell):
        torch_forward = True
        loads: list[str] = []

        def load(self, device):
            super().load(device)
            self.loads.append(device)

        def embed_batch(self, batch):
            self.seen.append((self.device, len(batch)))
            return np.stack([batch.sum(1), (batch > 0).sum(1)], axis=1)

    ad = toy_adata(n=53)
    single = embed(Torchy(), ad, dataset_sha256="t", cache=None, device="cpu", batch_size=4)
    model = Torchy()
    Torchy.loads = []
    sharded = embed(model, ad, dataset_sha256="t", cache=None, device="cpu,cpu", batch_size=4)
    np.testing.assert_array_equal(single.X, sharded.X)
    assert Torchy.loads == ["cpu", "cpu"]  # the primary plus one replica
    assert sum(n for _, n in model.seen) == ad.n_obs and sharded.meta["device"] == "cpu,cpu"


def test_device_lists_are_validated():
    from scfm_bench.embed import primary_device, resolve_device
    from scfm_bench.exceptions import ConfigError
    from scfm_bench.settings import Settings

    assert resolve_device("cpu, cpu") == "cpu,cpu" and primary_device("cuda:1,cuda:0") == "cuda:1"
    with pytest.raises(ConfigError, match="auto"):
        resolve_device("auto,cpu")
    with pytest.raises(ValueError, match="comma list"):
        Settings(device="gpu0")
    assert Settings(device="cuda:0,cuda:1").device == "cuda:0,cuda:1"
