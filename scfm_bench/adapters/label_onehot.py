"""Positive control: the one-hot encoding of the dataset's labels plus small seeded noise.

It is the best a label-aware embedding can do, so control-scaled scores put it at 1. The noise (sd
0.05) breaks ties within a label, so kNN- and silhouette-based metrics stay defined.
"""

from __future__ import annotations

import numpy as np

from scfm_bench.adapters._base import Adapter, InputSpec, obs_column
from scfm_bench.registry import ADAPTERS

NOISE_SD = 0.05


@ADAPTERS.register("label_onehot")
class LabelOneHotControl(Adapter):
    key = "label_onehot"
    display_name = "Label one-hot (control)"
    kind = "ceiling"
    description = "One-hot of the cell-type labels plus N(0, 0.05²) noise, seeded: the positive control."
    input_spec = InputSpec(needs_label=True)

    def embed_batch(self, adata) -> np.ndarray:
        labels = obs_column(adata, "label", self.key)
        _, codes = np.unique(labels, return_inverse=True)
        # at least two columns even for a single label, so the embedding is never one-dimensional
        onehot = np.eye(max(int(codes.max()) + 1, 2), dtype=np.float32)[codes]
        rng = np.random.default_rng(self.seed)
        return onehot + rng.normal(0.0, NOISE_SD, onehot.shape).astype(np.float32)
