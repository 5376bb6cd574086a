"""Positive control: the one-hot encoding of the dataset's labels plus small seeded noise.

It is the best a label-aware embedding can do, so control-scaled scores put it at 1. The noise (sd
0.05) breaks ties within a label, so kNN- and silhouette-based metrics stay defined. On a
reference/query pair each side names its types in its own words ("CD4 T cells" / "CD4+ T cell"), so
one-hot label text would put the same type in two columns and score like random there; the pair's
shared vocabulary is the Cell Ontology id, which it encodes when the pair declares one.
"""

from __future__ import annotations

import numpy as np

from scfm_bench.adapters._base import Adapter, InputSpec, obs_column
from scfm_bench.data.pair import ROLE_KEY
from scfm_bench.registry import ADAPTERS

NOISE_SD = 0.05


@ADAPTERS.register("label_onehot")
class LabelOneHotControl(Adapter):
    key = "label_onehot"
    display_name = "Label one-hot (control)"
    kind = "ceiling"
    version = "2"  # 2: Cell Ontology ids on reference/query pairs
    description = "One-hot of the cell-type labels plus N(0, 0.05²) noise, seeded: the positive control."
    input_spec = InputSpec(needs_label=True)

    def embed_batch(self, adata) -> np.ndarray:
        onto = adata.uns.get("scfm_bench_fields", {}).get("ontology_id")
        on_pair = ROLE_KEY in adata.obs and onto in adata.obs
        labels = obs_column(adata, "ontology_id" if on_pair else "label", self.key)
        _, codes = np.unique(labels, return_inverse=True)
        # at least two columns even for a single label, so the embedding is never one-dimensional
        onehot = np.eye(max(int(codes.max()) + 1, 2), dtype=np.float32)[codes]
        rng = np.random.default_rng(self.seed)
        return onehot + rng.normal(0.0, NOISE_SD, onehot.shape).astype(np.float32)
