"""Run an adapter over a dataset: cache lookup, device, batching, OOM back-off, validation, timings."""

from __future__ import annotations

import logging
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scfm_bench.adapters._base import Adapter, Prepared
from scfm_bench.embed.cache import EmbeddingCache, cache_key
from scfm_bench.embed.memory import PeakMemory
from scfm_bench.exceptions import CellFailed
from scfm_bench.progress import progress_bar

log = logging.getLogger(__name__)


@dataclass
class EmbeddingResult:
    X: np.ndarray
    cache_key: str
    cached: bool
    prepare_s: float | None = None
    embed_s: float | None = None
    peak_ram_mb: float | None = None
    peak_gpu_mb: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def validate_embedding(X: Any, n_cells: int, model: str) -> np.ndarray:
    """Reject garbage with the reason: wrong shape, non-finite values, or no variation."""
    X = np.asarray(X)
    if X.ndim != 2:
        raise CellFailed(f"model {model!r} returned an array of shape {X.shape}; expected (n_cells, dim).")
    if X.shape[0] != n_cells:
        raise CellFailed(f"model {model!r} returned {X.shape[0]} rows for {n_cells} cells.")
    if X.shape[1] == 0:
        raise CellFailed(f"model {model!r} returned an embedding with 0 dimensions.")
    bad = ~np.isfinite(X)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise CellFailed(f"model {model!r} returned non-finite values (NaN/inf) in {len(rows)} of {n_cells} cells.")
    if n_cells > 1 and np.ptp(X, axis=0).max() == 0:
        raise CellFailed(f"model {model!r} returned a constant embedding (every cell identical).")
    return X.astype(np.float32, copy=False)


def is_oom(exc: BaseException) -> bool:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(exc, getattr(torch.cuda, "OutOfMemoryError", ())):
        return True
    return isinstance(exc, (RuntimeError, MemoryError)) and "out of memory" in str(exc).lower()


def _to_numpy(out: Any) -> np.ndarray:
    if hasattr(out, "detach"):  # a torch tensor
        return out.detach().float().cpu().numpy()
    return np.asarray(out)


def plan_batches(lengths, batch_size: int, token_budget: int | None, *, bucketed: bool = True) -> list[np.ndarray]:
    """Index batches: with ``bucketed`` the items are sorted by length (longest first) so a batch pads
    to similar lengths, and a batch closes when ``batch_size`` items or ``token_budget`` padded tokens
    (items x longest item) would be exceeded. Without it: input order, fixed ``batch_size``."""
    n = len(lengths)
    if not bucketed:
        return [np.arange(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    lengths = np.asarray(lengths)
    order = np.argsort(-lengths, kind="stable")
    batches, start = [], 0
    while start < n:
        longest = max(int(lengths[order[start]]), 1)
        size = batch_size if token_budget is None else max(1, min(batch_size, token_budget // longest))
        batches.append(order[start : start + size])
        start += size
    return batches


@contextmanager
def autocast(device: str, precision: str = "auto"):
    """bf16 autocast on CUDA when the GPU supports it (fp32 on CPU, or with precision="fp32"); yields which."""
    import torch

    use_bf16 = device.startswith("cuda") and precision != "fp32" and torch.cuda.is_bf16_supported()
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
        yield "bf16" if use_bf16 else "fp32"


@contextmanager
def forward_context(device: str, precision: str = "auto"):
    """Gradient-free forward passes under :func:`autocast`."""
    import torch

    with torch.inference_mode(), autocast(device, precision) as used:
        yield used


def run_batches(adapter: Adapter, prep: Prepared, batch_size: int, *, min_batch_size: int = 1,
                token_budget: int | None = None, bucketed: bool = True, advance=None) -> np.ndarray:
    """Embed ``prep`` in batches (see plan_batches) and return the rows in input order.

    On an out-of-memory error the batch size and token budget halve and the remaining items are
    re-planned from the failed batch on. ``advance(n)`` reports progress (default: a bar of its own).
    """
    if prep.whole:
        return _to_numpy(adapter.embed_batch(prep.collate(list(prep.dataset))))
    n = len(prep.dataset)
    lengths = prep.lengths if prep.lengths is not None else np.ones(n, dtype=int)
    batches = plan_batches(lengths, batch_size, token_budget, bucketed=bucketed and prep.lengths is not None)
    done_idx: list[np.ndarray] = []
    outputs: list[np.ndarray] = []
    with progress_bar(f"embedding with {adapter.key}", n) if advance is None else nullcontext(advance) as advance:
        while batches:
            idx = batches[0]
            try:
                out = _to_numpy(adapter.embed_batch(prep.collate([prep.dataset[i] for i in idx])))
            except Exception as exc:
                if not is_oom(exc) or len(idx) <= min_batch_size:
                    raise
                batch_size = max(min_batch_size, len(idx) // 2)
                token_budget = token_budget // 2 if token_budget else None
                log.warning("model %s: out of memory; retrying with batch size %d", adapter.key, batch_size)
                torch = sys.modules.get("torch")
                if torch is not None and torch.cuda.is_available():
                    torch.cuda.empty_cache()
                rest = np.concatenate(batches)
                sub = plan_batches(np.asarray(lengths)[rest], batch_size, token_budget, bucketed=bucketed)
                batches = [rest[b] for b in sub]
                continue
            batches.pop(0)
            outputs.append(out)
            done_idx.append(idx)
            advance(len(idx))
    X = np.concatenate(outputs, axis=0)
    restored = np.empty_like(X)
    restored[np.concatenate(done_idx)] = X
    return restored


def shard_items(lengths, n_shards: int) -> list[np.ndarray]:
    """Split item indices into ``n_shards`` with near-equal token totals (longest first, each to the
    lightest shard); every shard is in input order."""
    loads = np.zeros(n_shards)
    owner = np.empty(len(lengths), dtype=int)
    for i in np.argsort(-np.asarray(lengths), kind="stable"):
        owner[i] = s = int(np.argmin(loads))
        loads[s] += max(int(lengths[i]), 1)
    return [np.flatnonzero(owner == s) for s in range(n_shards)]


def run_sharded(adapter: Adapter, prep: Prepared, devices: list[str], batch_size: int, *,
                token_budget: int | None = None) -> np.ndarray:
    """Data-parallel embedding: one replica of the loaded ``adapter`` per device (the first is
    ``adapter`` itself), each embedding its shard in a thread (torch releases the GIL in kernels);
    OOM back-off works per shard. Rows come back in input order."""
    import copy
    from concurrent.futures import ThreadPoolExecutor

    lengths = prep.lengths if prep.lengths is not None else np.ones(prep.n_cells, dtype=int)
    shards = [s for s in shard_items(lengths, len(devices)) if s.size]
    replicas = [adapter]
    for dev in devices[1 : len(shards)]:
        replica = copy.copy(adapter)  # shares the tokenised state; load() rebinds the weights to ``dev``
        replica.load(dev)
        replicas.append(replica)

    def work(replica: Adapter, idx: np.ndarray, advance) -> np.ndarray:
        sub = Prepared(dataset=[prep.dataset[i] for i in idx], collate=prep.collate, n_cells=idx.size,
                       lengths=None if prep.lengths is None else [prep.lengths[i] for i in idx])
        with forward_context(replica.device):  # inference mode and autocast are per thread
            return run_batches(replica, sub, batch_size, token_budget=token_budget, advance=advance)

    with progress_bar(f"embedding with {adapter.key} on {len(shards)} devices", prep.n_cells) as advance, \
            ThreadPoolExecutor(len(shards)) as pool:
        parts = list(pool.map(work, replicas, shards, [advance] * len(shards)))
    X = np.empty((prep.n_cells, parts[0].shape[1]), dtype=parts[0].dtype)
    for idx, part in zip(shards, parts):
        X[idx] = part
    return X


def adapter_cache_key(adapter: Adapter, dataset_sha256: str, adata) -> str:
    """The identity of an embedding: also the preprocessing and the field map the runner declared in
    ``uns`` (another batch column means another Harmony/scVI embedding)."""
    return cache_key(dataset_sha256=dataset_sha256, adapter=adapter.key, version=adapter.version,
                     weights_id=adapter.weights_id, params=adapter.record_params(), seed=adapter.seed,
                     preprocess=adata.uns.get("scfm_bench_preprocess"), fields=adata.uns.get("scfm_bench_fields"))


def embed(
    adapter: Adapter,
    adata,
    *,
    dataset_sha256: str,
    cache: EmbeddingCache | None,
    device: str = "cpu",
    batch_size: int = 64,
) -> EmbeddingResult:
    """Embed ``adata`` with ``adapter`` (cached). Raises CellFailed/CellSkipped for cell-level problems."""
    params = adapter.record_params()
    key = adapter_cache_key(adapter, dataset_sha256, adata)
    if cache is not None and (hit := cache.get(key)) is not None:
        X, meta = hit
        log.info("model %s: embedding loaded from cache %s", adapter.key, key)
        return EmbeddingResult(validate_embedding(X, adata.n_obs, adapter.key), key, True, meta=meta)

    np.random.seed(adapter.seed)  # for libraries that still draw from the global generator
    devices = device.split(",")
    with PeakMemory() as pm:
        t0 = time.perf_counter()
        adapter.load(devices[0])
        prep = adapter.prepare(adata)
        t1 = time.perf_counter()
        sharded = len(devices) > 1 and adapter.torch_forward and not prep.whole
        with forward_context(devices[0]) if adapter.torch_forward else nullcontext("n/a") as precision:
            if sharded:
                X = run_sharded(adapter, prep, devices, batch_size, token_budget=adapter.token_budget)
            else:
                X = run_batches(adapter, prep, batch_size, token_budget=adapter.token_budget)
        t2 = time.perf_counter()
    X = validate_embedding(X, adata.n_obs, adapter.key)
    meta = {
        "adapter": adapter.key, "version": adapter.version, "weights_id": adapter.weights_id, "params": params,
        "seed": adapter.seed, "dataset_sha256": dataset_sha256, "device": device if sharded else devices[0], "dim": int(X.shape[1]),
        "prepare_s": t1 - t0, "embed_s": t2 - t1, "peak_ram_mb": pm.peak_ram_mb, "peak_gpu_mb": pm.peak_gpu_mb,
        "precision": precision, "run_info": adapter.run_info, "cell_outputs": adapter.cell_outputs,
    }
    if cache is not None:
        cache.put(key, X, meta)
    return EmbeddingResult(X, key, False, t1 - t0, t2 - t1, pm.peak_ram_mb, pm.peak_gpu_mb, meta)
