"""scANVI baseline: scvi-tools SCANVI initialised from the scVI model, its latent as the embedding.

scANVI is semi-supervised: it sees cell-type labels. To keep them from leaking into the cells it is
evaluated on, only reference labels are visible: the rows a reference/query pair entry marks
``reference`` (obs ``scfm_role``), or the batches in ``reference_batches``; every other cell is
"unlabelled" for scANVI whatever its label. Without either, the model is skipped with the reason
(evaluating an embedding trained on the labels it is scored against would be leakage). Score it with
the annotation task's ``ref_query`` protocol; the number of labelled cells is recorded. The cells whose
labels it saw and its classifier's own predictions are cached with the latent (``cell_outputs``): the
annotation task skips every protocol that would test on a seen cell (cv, cross_batch, fewshot, novel:
they draw their own training cells) and scores the predictions as probe ``own`` in ref_query.
"""

from __future__ import annotations

import logging

import numpy as np
from pydantic import Field

from scfm_bench.adapters._base import InputSpec, obs_column
from scfm_bench.adapters.scvi import SCVI, SCVIParams, epoch_progress
from scfm_bench.exceptions import CellSkipped
from scfm_bench.registry import ADAPTERS

log = logging.getLogger(__name__)

UNLABELLED = "scfm_unlabelled"


class SCANVIParams(SCVIParams):
    scanvi_max_epochs: int = Field(20, ge=1, description="scANVI epochs after the scVI pre-training (recorded).")
    reference_batches: list[str] = Field(default_factory=list, description="Batches whose labels scANVI may see "
                                         "(when the dataset has no obs['scfm_role'] from a pair entry).")
    role_key: str = Field("scfm_role", description="obs column marking reference/query rows.")


def visible_labels(adata, params: SCANVIParams, model: str) -> np.ndarray:
    """The labels scANVI may train on: reference rows keep theirs, all others become UNLABELLED."""
    labels = obs_column(adata, "label", model)
    if params.role_key in adata.obs:
        reference = adata.obs[params.role_key].astype(str).to_numpy() == "reference"
    elif params.reference_batches:
        reference = np.isin(obs_column(adata, "batch", model), params.reference_batches)
    else:
        raise CellSkipped(f"model {model!r} trains on labels: it needs a reference/query pair entry (obs "
                          f"{params.role_key!r}) or {model}.reference_batches, so that evaluated cells' labels stay hidden.")
    if not reference.any():
        raise CellSkipped(f"model {model!r}: no reference cells (reference_batches {params.reference_batches}).")
    return np.where(reference, labels, UNLABELLED)


@ADAPTERS.register("scanvi")
class SCANVI(SCVI):
    key = "scanvi"
    display_name = "scANVI"
    version = "2"  # 2: the cells whose labels it saw and its own predictions are cached beside the latent
    description = ("scvi-tools SCANVI from the scVI model (HVG counts, batch covariate); labels visible only on "
                   "reference cells (pair entry or scanvi.reference_batches).")
    input_spec = InputSpec(raw_counts=True, needs_batch=True, needs_label=True, uses_labels=True, mem_gb=16)
    Params = SCANVIParams

    def record_params(self) -> dict:
        return {**super().record_params(), "labels_visible": "reference rows only"}

    def embed_batch(self, adata) -> np.ndarray:
        labels = visible_labels(adata, self.params, self.key)
        model = self.train_scanvi(adata, labels, self.params.scanvi_max_epochs)
        # the annotation task skips protocols that would test on these cells, and scores the predictions as probe "own"
        self.cell_outputs = {"labels_seen": np.flatnonzero(labels != UNLABELLED).tolist(),
                             "predictions": np.asarray(model.predict(), dtype=str).tolist()}
        return np.asarray(model.get_latent_representation(), dtype=np.float32)

    def predict_labels(self, adata, labels: np.ndarray, visible: np.ndarray, *, epochs: int) -> np.ndarray:
        """scANVI's own predicted label per cell, trained with only ``labels[visible]`` (the others are
        unlabelled whatever their value): ``epochs`` of scVI pre-training, then ``epochs`` of scANVI."""
        model = self.train_scanvi(adata, np.where(visible, np.asarray(labels, dtype=str), UNLABELLED), epochs, pretrain_epochs=epochs)
        return np.asarray(model.predict(), dtype=str)

    def train_scanvi(self, adata, labels: np.ndarray, epochs: int, *, pretrain_epochs: int | None = None):
        import scvi

        self.run_info["n_labelled_cells"] = int((labels != UNLABELLED).sum())
        base = self.train_scvi(adata, obs={"_scfm_label": labels}, max_epochs=pretrain_epochs)
        model = scvi.model.SCANVI.from_scvi_model(base, unlabeled_category=UNLABELLED, labels_key="_scfm_label")
        log.info("scANVI: %d epochs, %d labelled cells", epochs, self.run_info["n_labelled_cells"])
        with epoch_progress("scANVI training", epochs) as callbacks:
            model.train(max_epochs=epochs, callbacks=callbacks, **self.trainer_kwargs())
        return model
