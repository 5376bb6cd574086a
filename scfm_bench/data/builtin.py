"""Builtin datasets: the generators, and their h5ad cache under ``<cache_dir>/builtin``."""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scfm_bench.atomic import atomic_path
from scfm_bench.config.schemas import DatasetEntry
from scfm_bench.data.pbmc68k import pbmc68k_semisynthetic
from scfm_bench.data.perturb_sim import perturbation_synthetic
from scfm_bench.data.synthetic import synthetic
from scfm_bench.exceptions import ConfigError
from scfm_bench.settings import Settings

if TYPE_CHECKING:
    from anndata import AnnData

logger = logging.getLogger(__name__)

BUILDERS: dict[str, Callable[..., AnnData]] = {
    "pbmc68k_semisynthetic": pbmc68k_semisynthetic,
    "synthetic": synthetic,
    "perturbation_synthetic": perturbation_synthetic,
}

# Part of every cache key: bump it when a builder's output changes for the same parameters.
CACHE_VERSION = 1


def builtin_params(name: str, entry: DatasetEntry) -> dict[str, Any]:
    """The builder's full parameters: ``entry.params`` over the builder's defaults."""
    if entry.builder not in BUILDERS:
        raise ConfigError(f"dataset {name!r}: unknown builder {entry.builder!r}. Known builders: {', '.join(sorted(BUILDERS))}.")
    signature = inspect.signature(BUILDERS[entry.builder])
    try:
        bound = signature.bind(**entry.params)
    except TypeError:
        unknown = sorted(set(entry.params) - set(signature.parameters))
        raise ConfigError(
            f"dataset {name!r}: builder {entry.builder!r} has no parameter(s) {unknown}. "
            f"Its parameters: {', '.join(signature.parameters)}."
        ) from None
    bound.apply_defaults()
    return dict(bound.arguments)


def build_builtin(name: str, entry: DatasetEntry, settings: Settings, *, rebuild: bool = False) -> Path:
    """Path of the cached h5ad for this builder and parameters, building it first if needed."""
    params = builtin_params(name, entry)
    key_doc = json.dumps({"builder": entry.builder, "params": params, "version": CACHE_VERSION}, sort_keys=True, default=str)
    key = hashlib.sha256(key_doc.encode()).hexdigest()[:16]
    path = settings.cache_dir / "builtin" / f"{entry.builder}-{key}.h5ad"
    if path.is_file() and not rebuild:
        return path
    logger.info("dataset %r: building %s(%s)", name, entry.builder, params)
    try:
        adata = BUILDERS[entry.builder](**params)
    except ValueError as e:  # the builders reject out-of-range parameters with ValueError
        raise ConfigError(f"dataset {name!r}: params for builder {entry.builder!r}: {e}.") from None
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp)
    return path
