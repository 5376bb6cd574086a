"""Shared fixtures for the data-layer tests: tiny seeded AnnData files, settings, a loopback HTTP server."""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from scfm_bench.settings import Settings


def make_adata(n_cells: int = 60, n_genes: int = 30, *, n_batches: int = 3, seed: int = 0):
    """Integer counts, two labelled cell types with CL ids, ``n_batches`` batches, gene symbols."""
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    types = rng.integers(2, size=n_cells)
    obs = pd.DataFrame(
        {
            "cell_type": np.array(["T cell", "B cell"])[types],
            "cell_type_ontology_term_id": np.array(["CL:0000084", "CL:0000236"])[types],
            "batch": [f"b{i % n_batches}" for i in range(n_cells)],
        },
        index=[f"cell{i}" for i in range(n_cells)],
    )
    X = sp.csr_matrix(rng.poisson(2.0, (n_cells, n_genes)).astype(np.float32))
    return ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=[f"G{j}" for j in range(n_genes)]))


@pytest.fixture
def tiny_adata():
    return make_adata


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # both set explicitly: SCFM_BENCH_* variables in the environment must not leak into tests
    return Settings(cache_dir=tmp_path / "cache", data_dir=tmp_path / "cache" / "data")


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep test output clean
        pass


@pytest.fixture
def http_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """(folder served, base URL) of an HTTP server on 127.0.0.1 at a free port; never the internet."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    root = tmp_path / "www"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
