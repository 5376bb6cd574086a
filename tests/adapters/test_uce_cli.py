"""scfm-bench embed / run / list with a tiny UCE folder, as a user types them."""

import json

import anndata as ad
import numpy as np
import pytest
from test_scfm_cli import cli, write_toy
from tiny_uce import build_uce

SHORT = ("--model-param", "uce.sample_size=48")  # 1,024 genes per cell by default: short sequences keep the test fast


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = write_toy(tmp_path_factory.mktemp("uce_cli"))
    return root, build_uce(root / "models" / "uce")


def test_embed_h5ad(toy, tmp_path):
    root, ckpt = toy
    out = tmp_path / "emb.h5ad"
    r = cli("embed", "-m", "uce", "--checkpoint", f"uce={ckpt}", *SHORT, "--model-param", "uce.mask=bool", "-d", str(root / "toy.h5ad"),
            "-o", str(out), "-q")
    assert r.returncode == 0, r.stderr
    a = ad.read_h5ad(out)
    assert a.obsm["X_uce"].shape == (60, 8) and a.uns["X_uce"]["params"]["mask"] == "bool"
    assert a.uns["X_uce"]["run_info"]["genes_matched"] == 47
    np.testing.assert_allclose(np.linalg.norm(a.obsm["X_uce"], axis=1), 1, atol=1e-5)


@pytest.mark.slow
def test_run_scores_with_checkpoint_and_skips_without(toy, tmp_path):
    root, ckpt = toy
    args = ("run", "-t", "zero_shot_clustering", "-m", "uce", "-d", str(root / "toy.h5ad"), "--label-key", "cell_type",
            "--batch-key", "batch", *SHORT, "-q")
    r = cli(*args, "--checkpoint", f"uce={ckpt}", "-o", str(tmp_path / "a"))
    assert r.returncode == 0, r.stderr
    recs = [json.loads(line) for f in (tmp_path / "a").rglob("*.jsonl") for line in f.read_text().splitlines()]
    ok = [x for x in recs if x["status"] == "ok"]
    assert ok and not [x for x in recs if x["status"] == "failed"]
    assert ok[0]["params"]["embedding_info"]["mask"].startswith("float") and np.isfinite(ok[0]["value"])
    r = cli(*args, "-o", str(tmp_path / "b"))  # no checkpoint anywhere: skipped cells with the files expected, exit 0
    assert r.returncode == 0, r.stderr
    recs = [json.loads(line) for f in (tmp_path / "b").rglob("*.jsonl") for line in f.read_text().splitlines()]
    assert recs and all(x["status"] == "skipped" and "species_chrom.csv" in x["reason"] for x in recs)


def test_list_models_shows_uce(toy):
    root, _ = toy
    r = cli("list", "models", "-f", "json", env_extra={"SCFM_BENCH_MODEL_DIR": str(root / "models")})
    row = {x["key"]: x for x in json.loads(r.stdout)}["uce"]
    assert row["checkpoint"].startswith("found") and row["variant"] == "4layer_model.torch, float mask" and "MIT" in row["licence"]
