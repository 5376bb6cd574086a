"""Embedding cache keyed by (dataset sha256, adapter key + version + weights + params, seed).

Entries are written atomically (temp file + os.replace) so an interrupted run never leaves a
half-written matrix that a later --resume would trust.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np


def cache_key(*, dataset_sha256: str, adapter: str, version: str, weights_id: str | None, params: dict[str, Any], seed: int,
              preprocess: dict[str, Any] | None = None) -> str:
    """``preprocess`` holds the preprocessing parameters: baselines embed preprocessed data."""
    payload = json.dumps(
        {"dataset": dataset_sha256, "adapter": adapter, "version": version, "weights": weights_id, "params": params,
         "seed": seed, "preprocess": preprocess},
        sort_keys=True, default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


class EmbeddingCache:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.root / f"{key}.npy", self.root / f"{key}.json"

    def get(self, key: str) -> tuple[np.ndarray, dict[str, Any]] | None:
        npy, meta = self._paths(key)
        if not (npy.is_file() and meta.is_file()):
            return None
        try:
            return np.load(npy, allow_pickle=False), json.loads(meta.read_text())
        except (ValueError, OSError, json.JSONDecodeError):
            return None  # unreadable entry: recompute and overwrite

    def contains(self, key: str) -> bool:
        return all(p.is_file() for p in self._paths(key))

    def put(self, key: str, X: np.ndarray, meta: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        npy, meta_path = self._paths(key)
        tmp = npy.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, X, allow_pickle=False)
        os.replace(tmp, npy)
        tmp_meta = meta_path.with_suffix(f".{os.getpid()}.tmp")
        tmp_meta.write_text(json.dumps(meta, default=str))
        os.replace(tmp_meta, meta_path)  # meta last: it marks the entry complete
