"""Embedding cache keyed by everything that changes the input: dataset sha256, the field map
(label, batch, counts layer, gene ids, rounding), the preprocessing parameters, adapter key +
version + weights + params, seed.

Entries are written atomically (scfm_bench.atomic) and their sha256 is stored in the metadata;
an entry whose bytes no longer match is logged and recomputed, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from scfm_bench.atomic import atomic_path, atomic_write_text

log = logging.getLogger(__name__)


def cache_key(*, dataset_sha256: str, adapter: str, version: str, weights_id: str | None, params: dict[str, Any], seed: int,
              preprocess: dict[str, Any] | None = None, fields: dict[str, Any] | None = None) -> str:
    """``preprocess`` holds the preprocessing parameters (baselines embed preprocessed data);
    ``fields`` the dataset's field map (Harmony/scVI correct for the batch column it names)."""
    payload = json.dumps(
        {"dataset": dataset_sha256, "adapter": adapter, "version": version, "weights": weights_id, "params": params,
         "seed": seed, "preprocess": preprocess, "fields": fields},
        sort_keys=True, default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class EmbeddingCache:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.root / f"{key}.npy", self.root / f"{key}.json"

    def _intact(self, key: str) -> dict[str, Any] | None:
        """The entry's metadata, if both files exist and the array's bytes match the sha256 recorded
        when it was written; a corrupt or unreadable entry is logged and treated as absent."""
        npy, meta_path = self._paths(key)
        if not (npy.is_file() and meta_path.is_file()):
            return None
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("sha256") == _sha256(npy):
                return meta
            log.warning("embedding cache entry %s is corrupt (sha256 mismatch); recomputing it", npy)
        except (OSError, ValueError) as exc:
            log.warning("embedding cache entry %s is unreadable (%s); recomputing it", npy, exc)
        return None

    def get(self, key: str) -> tuple[np.ndarray, dict[str, Any]] | None:
        if (meta := self._intact(key)) is None:
            return None
        try:
            return np.load(self._paths(key)[0], allow_pickle=False), meta
        except (OSError, ValueError) as exc:
            log.warning("embedding cache entry %s is unreadable (%s); recomputing it", key, exc)
            return None

    def contains(self, key: str) -> bool:
        return self._intact(key) is not None

    def put(self, key: str, X: np.ndarray, meta: dict[str, Any]) -> None:
        npy, meta_path = self._paths(key)
        with atomic_path(npy) as tmp:
            np.save(tmp, X, allow_pickle=False)
        # meta last: it carries the hash and so marks the entry complete
        atomic_write_text(meta_path, json.dumps({**meta, "sha256": _sha256(npy)}, default=str))
