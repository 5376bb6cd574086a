"""scfm-bench embed / run / list with a tiny scGPT checkpoint, as a user types them."""

import json
import subprocess
import sys

import anndata as ad
import numpy as np
import pytest
from tiny_ckpt import build_scgpt, toy_counts


def cli(*args, env_extra=None, cwd=None):
    import os

    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "scfm_bench", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def write_toy(root):
    """60 labelled cells in two batches as ROOT/toy.h5ad."""
    data = toy_counts(n_cells=60, seed=1)
    data.obs["cell_type"] = np.repeat(["a", "b", "c"], 20)
    data.obs["batch"] = np.tile(["b1", "b2"], 30)
    data.write_h5ad(root / "toy.h5ad")
    return root


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = write_toy(tmp_path_factory.mktemp("cli"))
    return root, build_scgpt(root / "models" / "scgpt")


@pytest.mark.parametrize("suffix", [".h5ad", ".parquet"])
def test_embed_writes_each_format(toy, suffix, tmp_path):
    root, ckpt = toy
    out = tmp_path / f"emb{suffix}"
    r = cli("embed", "-m", "scgpt", "--checkpoint", f"scgpt={ckpt}", "-d", str(root / "toy.h5ad"), "-o", str(out), "-q")
    assert r.returncode == 0, r.stderr
    if suffix == ".h5ad":
        a = ad.read_h5ad(out)
        assert a.obsm["X_scgpt"].shape == (60, 16) and a.uns["X_scgpt"]["adapter"] == "scgpt"
        assert a.uns["X_scgpt"]["run_info"]["genes_matched"] > 0
        np.testing.assert_allclose(np.linalg.norm(a.obsm["X_scgpt"], axis=1), 1, atol=1e-5)
    else:
        import pandas as pd

        df = pd.read_parquet(out)
        assert df.shape == (60, 16) and df.index[0] == "cell0"


def test_embed_missing_checkpoint_exits_1_and_writes_nothing(toy, tmp_path):
    root, _ = toy
    out = tmp_path / "e.npy"
    r = cli("embed", "-m", "scgpt", "-d", str(root / "toy.h5ad"), "-o", str(out), "-q")
    assert r.returncode == 1 and "best_model.pt, vocab.json, args.json" in r.stderr and not out.exists()
    r = cli("embed", "-m", "pca", "--checkpoint", "pca=/x", "-d", str(root / "toy.h5ad"), "-o", str(out), "-q")
    assert r.returncode == 2 and "takes no checkpoint" in r.stderr


@pytest.mark.slow
def test_run_scores_with_model_dir_and_records_gene_matching(toy, tmp_path):
    """(Without a checkpoint the cell is skipped: tests/test_contracts.py and the embed test above.)"""
    root, _ = toy
    args = ("run", "-t", "zero_shot_clustering", "-m", "scgpt", "-d", str(root / "toy.h5ad"), "--label-key", "cell_type",
            "--batch-key", "batch", "-q")
    r = cli(*args, "-o", str(tmp_path / "b"), env_extra={"SCFM_BENCH_MODEL_DIR": str(root / "models")})
    assert r.returncode == 0, r.stderr
    recs = [json.loads(line) for f in (tmp_path / "b").rglob("*.jsonl") for line in f.read_text().splitlines()]
    ok = [x for x in recs if x["status"] == "ok"]
    assert ok and ok[0]["params"]["embedding_info"]["matched_count_fraction"] == 1.0


def test_list_models_shows_found_checkpoint(toy):
    root, _ = toy
    r = cli("list", "models", "-f", "json", env_extra={"SCFM_BENCH_MODEL_DIR": str(root / "models")})
    rows = {x["key"]: x for x in json.loads(r.stdout)}
    assert rows["scgpt"]["checkpoint"].startswith("found") and rows["geneformer"]["checkpoint"].startswith("missing")


@pytest.mark.slow
def test_run_scfoundation_scores_with_checkpoint_and_skips_without(toy, tmp_path):
    from tiny_scfoundation import build_scfoundation

    root, _ = toy
    ckpt = build_scfoundation(tmp_path / "scf")
    args = ("run", "-t", "zero_shot_clustering", "-m", "scfoundation", "-d", str(root / "toy.h5ad"), "--label-key", "cell_type",
            "--batch-key", "batch", "-q")
    r = cli(*args, "--checkpoint", f"scfoundation={ckpt}", "-o", str(tmp_path / "ok"))
    assert r.returncode == 0, r.stderr
    recs = [json.loads(line) for f in (tmp_path / "ok").rglob("*.jsonl") for line in f.read_text().splitlines()]
    ok = [x for x in recs if x["status"] == "ok"]
    assert ok and all(x["model"] == "scfoundation" for x in recs) and ok[0]["params"]["embedding_info"]["tgthighres"] == "t4"
    r = cli(*args, "-o", str(tmp_path / "skip"))
    assert r.returncode == 0, r.stderr
    recs = [json.loads(line) for f in (tmp_path / "skip").rglob("*.jsonl") for line in f.read_text().splitlines()]
    assert recs and all(x["status"] == "skipped" and "OS_scRNA_gene_index.19264.tsv" in x["reason"] for x in recs)
