"""A quick suite for runner tests: tiny synthetic data, pca/random, three cheap metrics."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def quick_suite(root: Path, *, models=("pca", "random"), seeds=(0,), n_cells: int = 300) -> Path:
    (root / "tasks").mkdir(parents=True)
    (root / "metrics").mkdir()
    (root / "datasets.yaml").write_text(yaml.safe_dump({"version": 1, "datasets": {"tiny": {
        "source": "builtin", "builder": "synthetic",
        "params": {"n_cells": n_cells, "n_genes": 200, "n_batches": 3, "n_cell_types": 4, "seed": 0},
        "fields": {"label": "cell_type", "batch": "batch"}}}}))
    (root / "metrics" / "quick.yaml").write_text(yaml.safe_dump({"description": "quick", "version": 1, "metrics": [
        {"id": "asw_label", "metric": "silhouette_label", "family": "bio"},
        {"id": "asw_batch", "metric": "silhouette_batch", "family": "batch"},
        {"id": "nmi_kmeans", "metric": "nmi_ari_kmeans", "output": "nmi", "family": "bio"}], "primary": "asw_label"}))
    (root / "tasks" / "batch_integration.yaml").write_text(yaml.safe_dump(
        {"task": "batch_integration", "datasets": ["tiny"], "models": list(models), "seeds": list(seeds),
         "metric_suite": "quick", "params": {"knn_method": "exact"}}))
    return root


def cli(*args, cwd=None, env_extra=None, timeout=600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "scfm_bench", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout)
