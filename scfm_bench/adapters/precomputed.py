"""An embedding computed elsewhere: an obsm key of the dataset, or an .npy / .parquet file.

.parquet files are matched to the dataset by cell id (index, or a ``cell_id`` column), so their row
order does not matter; .npy files carry no ids and must have exactly one row per cell, in order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from scfm_bench.adapters._base import Adapter
from scfm_bench.exceptions import CellFailed, ConfigError
from scfm_bench.registry import ADAPTERS


class PrecomputedParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    obsm_key: str | None = Field(None, description="Read adata.obsm[obsm_key] of the dataset.")
    path: str | None = Field(None, description="An .npy (rows in cell order) or .parquet (indexed by cell id) file.")
    name: str | None = Field(None, description="Model name in records and reports (default: precomputed, or NAME of "
                                               "--model precomputed:NAME), so several embeddings compare in one report.")

    @model_validator(mode="after")
    def _one_source(self) -> "PrecomputedParams":
        if (self.obsm_key is None) == (self.path is None):
            raise ValueError(
                "give exactly one of precomputed.obsm_key or precomputed.path, e.g. "
                "--model-param precomputed.obsm_key=X_mine or --model-param precomputed.path=emb.npy"
            )
        if self.path is not None and Path(self.path).suffix not in (".npy", ".parquet"):
            raise ValueError(f"precomputed.path {self.path!r} must end in .npy or .parquet")
        return self


@ADAPTERS.register("precomputed")
class Precomputed(Adapter):
    key = "precomputed"
    display_name = "Precomputed embedding"
    kind = "external"
    description = "An embedding computed elsewhere (obsm key or .npy/.parquet file), validated against the cells."
    Params = PrecomputedParams

    def record_params(self) -> dict:
        p = super().record_params()
        if self.params.path is not None:  # identify the file by content, not by name, for the cache key
            import hashlib

            p["file_sha256"] = hashlib.sha256(Path(self.params.path).read_bytes()).hexdigest()
        return p

    def check(self, adata) -> None:
        p = self.params
        if p.obsm_key is not None and p.obsm_key not in adata.obsm:
            raise ConfigError(
                f"precomputed.obsm_key {p.obsm_key!r} is not in the dataset's obsm (has: {', '.join(adata.obsm) or 'none'})."
            )
        if p.path is not None and not Path(p.path).is_file():
            raise ConfigError(f"precomputed.path {p.path} does not exist.")

    def embed_batch(self, adata) -> np.ndarray:
        p = self.params
        if p.obsm_key is not None:
            return np.asarray(adata.obsm[p.obsm_key], dtype=np.float32)
        path = Path(p.path)
        if path.suffix == ".npy":
            X = np.load(path, allow_pickle=False)
            if X.ndim != 2 or X.shape[0] != adata.n_obs:
                raise CellFailed(
                    f"{path}: shape {X.shape}, expected ({adata.n_obs}, d) rows in the dataset's cell order. "
                    "Use a .parquet indexed by cell id to match rows by id."
                )
            return X.astype(np.float32)
        import pandas as pd

        df = pd.read_parquet(path)
        if "cell_id" in df.columns:
            df = df.set_index("cell_id")
        df.index = df.index.astype(str)
        missing = adata.obs_names.difference(df.index)
        if len(missing):
            raise CellFailed(
                f"{path}: {len(missing)} of {adata.n_obs} cells have no row (e.g. {', '.join(missing[:3])}); "
                "index the parquet by the dataset's cell ids (obs_names)."
            )
        return df.loc[adata.obs_names].to_numpy(dtype=np.float32)
