"""``scfm-bench fetch DATASET``: download (url) or build (builtin) a dataset into the cache and verify it."""

from __future__ import annotations

from typing import Annotated

import typer

from scfm_bench.cli._common import SuiteDir, out_console, settings


def register(app: typer.Typer) -> None:
    app.command("fetch")(fetch)


def fetch(dataset: Annotated[str, typer.Argument(help="Dataset name from datasets.yaml.")], suite_dir: SuiteDir = None) -> int:
    """Fetch and verify a dataset so later runs work offline."""
    from scfm_bench.cli import configure_logging
    from scfm_bench.config import load_suite
    from scfm_bench.config.suite import _lookup
    from scfm_bench.data import load_dataset

    configure_logging(0)
    suite = load_suite(suite_dir)
    entry = _lookup(suite.catalogue.datasets, dataset, "dataset", suite.root / "datasets.yaml")
    ds = load_dataset(dataset, entry, settings(), suite_root=suite.root)
    out_console().print(f"{dataset}: {ds.adata.n_obs} cells x {ds.adata.n_vars} genes, sha256 {ds.sha256}", highlight=False)
    return 0
