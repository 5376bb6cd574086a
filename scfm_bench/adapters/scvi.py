"""scVI baseline (scvi-tools SCVI on the HVG counts, batch as covariate).

Epochs follow scvi-tools' own size heuristic, min(400, 400 * 20000 / n_cells), capped by
``max_epochs_cap`` so the default run stays fast; the cap is a recorded parameter.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from scfm_bench.adapters._base import Adapter, InputSpec, obs_column, require
from scfm_bench.registry import ADAPTERS

log = logging.getLogger(__name__)


class SCVIParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_layers: int = Field(2, ge=1)
    n_latent: int = Field(30, ge=2)
    n_hidden: int = Field(128, ge=8)
    max_epochs_cap: int = Field(100, ge=1, description="Upper bound on training epochs (speed).")
    batch_size: int = Field(128, ge=8)


def scvi_epochs(n_cells: int, cap: int) -> int:
    return max(1, min(cap, 400, round(400 * 20000 / max(n_cells, 1))))


@ADAPTERS.register("scvi")
class SCVI(Adapter):
    key = "scvi"
    display_name = "scVI"
    kind = "baseline"
    version = "1"
    description = "scvi-tools SCVI (2 layers, 30 latent) trained on the HVG raw counts with the batch as covariate."
    input_spec = InputSpec(raw_counts=True, needs_batch=True, mem_gb=16)
    Params = SCVIParams

    def record_params(self) -> dict:
        return {**super().record_params(), "epochs_rule": "min(cap, 400, 400*20000/n_cells)"}

    def embed_batch(self, adata) -> np.ndarray:
        return np.asarray(self.train_scvi(adata).get_latent_representation(), dtype=np.float32)

    def train_scvi(self, adata, obs: dict | None = None, max_epochs: int | None = None):
        """A trained SCVI model on the HVG counts; ``obs`` adds columns to its AnnData (e.g. scANVI's labels);
        ``max_epochs`` replaces the size heuristic (a fixed budget)."""
        scvi = require("scvi", "baselines", self.key)
        batch = obs_column(adata, "batch", self.key)
        ad = adata[:, adata.var["highly_variable"].to_numpy()].copy()
        ad.obs = ad.obs.assign(_scfm_batch=batch, **(obs or {}))[["_scfm_batch", *(obs or {})]]
        scvi.settings.verbosity = logging.WARNING  # scvi and lightning install their own INFO handlers
        for name in ("lightning", "lightning.pytorch", "lightning.fabric", "lightning_fabric"):
            logging.getLogger(name).setLevel(logging.WARNING)
        scvi.settings.seed = self.seed  # after the levels: lightning's "Seed set" went to its handler and ours
        scvi.settings.dl_num_workers = 0
        scvi.model.SCVI.setup_anndata(ad, layer="counts", batch_key="_scfm_batch")
        model = scvi.model.SCVI(ad, n_layers=self.params.n_layers, n_latent=self.params.n_latent, n_hidden=self.params.n_hidden)
        epochs = max_epochs or scvi_epochs(ad.n_obs, self.params.max_epochs_cap)
        log.info("%s: training scVI %d epochs on %d cells", self.key, epochs, ad.n_obs)
        with epoch_progress("scVI training", epochs) as callbacks:
            model.train(max_epochs=epochs, callbacks=callbacks, **self.trainer_kwargs())
        return model

    def trainer_kwargs(self) -> dict:
        return dict(batch_size=self.params.batch_size, accelerator="gpu" if self.device.startswith("cuda") else "cpu",
                    enable_progress_bar=False, enable_model_summary=False, logger=False, enable_checkpointing=False)


@contextmanager
def epoch_progress(label: str, epochs: int):
    """Lightning callbacks that advance our rich progress line once per epoch (instead of lightning's bar)."""
    from lightning.pytorch import Callback

    from scfm_bench.progress import progress_bar

    with progress_bar(label, epochs, unit="epochs") as advance:
        class EpochProgress(Callback):
            def on_train_epoch_end(self, trainer, pl_module) -> None:
                advance(1)

        yield [EpochProgress()]
