"""``scfm-bench embed``: one model's embedding of one dataset, through the same engine and cache as ``run``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from scfm_bench.cli._common import (
    BatchKey,
    BatchSize,
    Checkpoint,
    CountsLayer,
    Device,
    LabelKey,
    OntologyKey,
    RoundCounts,
    SuiteDir,
    checkpoint_params,
    err_console,
    settings,
)

_SUFFIXES = (".h5ad", ".npy", ".parquet")


def register(app: typer.Typer) -> None:
    app.command("embed")(embed_cmd)


def embed_cmd(
    model: Annotated[str, typer.Option("--model", "-m", help="Model key (scFM or baseline).")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name from datasets.yaml, or a path to an .h5ad.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="OUT.h5ad (copy of the dataset + obsm/uns), OUT.npy (rows in cell order) "
                                                          "or OUT.parquet (indexed by cell id).")],
    checkpoint: Checkpoint = [],
    model_param: Annotated[list[str], typer.Option("--model-param", help="MODEL.KEY=VALUE.")] = [],
    label_key: LabelKey = None,
    batch_key: BatchKey = None,
    ontology_key: OntologyKey = None,
    counts_layer: CountsLayer = None,
    round_counts: RoundCounts = False,
    seed: Annotated[int, typer.Option(help="Seed for the model's random choices.")] = 0,
    device: Device = None,
    batch_size: BatchSize = None,
    suite_dir: SuiteDir = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors.")] = False,
) -> int:
    """Extract embeddings with any model. Exit 1 (nothing written) when the model fails or is skipped."""
    from scfm_bench.cli import configure_logging
    from scfm_bench.data import load_dataset
    from scfm_bench.embed import EmbeddingCache, embed, resolve_device
    from scfm_bench.exceptions import CellError, ConfigError
    from scfm_bench.progress import set_enabled
    from scfm_bench.registry import ADAPTERS
    from scfm_bench.runner.local import prepare_input
    from scfm_bench.runner.plan import RunOptions, _dataset_entries, parse_model_params, validated_params

    configure_logging(-1 if quiet else 0)
    set_enabled(not quiet and sys.stderr.isatty())
    if out.suffix not in _SUFFIXES:
        raise ConfigError(f"--out {out}: the file must end in {', '.join(_SUFFIXES)}.")
    cfg = settings(device=device, batch_size=batch_size)
    cls = ADAPTERS.get(model)
    params = parse_model_params([*model_param, *checkpoint_params(checkpoint)])
    unknown = set(params) - {model}
    if unknown:
        raise ConfigError(f"--model-param/--checkpoint name model(s) {sorted(unknown)}, but --model is {model!r}.")
    if cls.output != "embedding":
        raise ConfigError(f"model {model!r} yields a kNN graph, not an embedding: score it with `scfm-bench run -m {model}` "
                          "(batch_integration, zero_shot_clustering).")
    adapter = cls(validated_params(model, model, params.get(model, {})), seed=seed, model_dir=cfg.model_dir)
    from scfm_bench.config import load_suite

    suite = load_suite(suite_dir)
    entries, names = _dataset_entries(suite, RunOptions(
        datasets=[dataset], label_key=label_key, batch_key=batch_key, ontology_key=ontology_key, counts_layer=counts_layer,
        round_counts=round_counts))
    name = names[0]
    ds = load_dataset(name, entries[name], cfg, suite_root=suite.root)
    adapter.check(ds.adata)
    adata = prepare_input(ds, entries[name])  # what `run` embeds, so both share cache entries
    try:
        res = embed(adapter, adata, dataset_sha256=ds.sha256, cache=EmbeddingCache(cfg.embeddings_dir),
                    device=resolve_device(cfg.device), batch_size=cfg.batch_size)
    except CellError as exc:
        err_console().print(f"{exc.status}: {model} on {name}: {exc}", highlight=False, markup=False)
        return 1
    provenance = {**res.meta, "dataset": name, "cache_key": res.cache_key, "cached": res.cached}
    write_embedding(out, res.X, ds.adata, model, provenance)
    err_console().print(f"{model} on {name}: {res.X.shape[0]} cells x {res.X.shape[1]} dims -> {out}", highlight=False)
    return 0


def _h5ad_safe(value: Any) -> Any:
    """uns cannot hold None or ragged lists: keep scalars and dicts, JSON-encode the rest."""
    if isinstance(value, dict):
        return {str(k): _h5ad_safe(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)):
        return value
    return json.dumps(value, default=str)


def write_embedding(out: Path, X, adata, model: str, provenance: dict) -> None:
    """Write atomically (temp file + rename): an interrupted write never leaves a half file at ``out``."""
    import numpy as np

    from scfm_bench.atomic import atomic_path

    with atomic_path(out) as tmp:
        if out.suffix == ".npy":
            np.save(tmp, X)
        elif out.suffix == ".parquet":
            import pandas as pd

            df = pd.DataFrame(X, index=pd.Index(adata.obs_names, name="cell_id"), columns=[f"dim{i}" for i in range(X.shape[1])])
            df.to_parquet(tmp)
        else:
            ad = adata.copy()
            ad.obsm[f"X_{model}"] = X
            ad.uns[f"X_{model}"] = _h5ad_safe(provenance)
            ad.write_h5ad(tmp)
