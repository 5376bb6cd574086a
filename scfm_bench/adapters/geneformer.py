"""Geneformer V1 and V2 (Theodoris et al. 2023; Chen et al. 2024) through ``transformers``' BERT.

Checkpoint folder: an HF BERT directory (``config.json`` + ``model.safetensors`` or
``pytorch_model.bin``) plus the model's dictionaries (``token_dictionary_gc*.pkl``,
``gene_median_dictionary_gc*.pkl``; optional ``ensembl_mapping_dict_gc*.pkl`` and
``gene_name_id_dict_gc*.pkl``), anywhere below the folder. Token ids always come from the pickles.

Rank-value encoding per cell: counts / n_counts * 10,000 / gene median, where n_counts is the cell's
total over *all* genes; nonzero genes ranked by decreasing value. V1: first 2,048 tokens, no
special tokens, mean over the tokens of the penultimate layer. V2 (a ``<cls>`` in the dictionary):
``<cls>`` + first input_size-2 genes + ``<eos>``, CLS of the penultimate layer. Both poolings are
available (``pool``) and the one used is recorded. Cells keep their order (the engine sorts by length
for batching and restores it).
"""

from __future__ import annotations

import logging
import pickle
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from scfm_bench.adapters._base import InputSpec, Prepared, require
from scfm_bench.adapters._scfm import Finetunable, ScfmAdapter, ScfmParams, cell_entries, match_genes, raw_counts
from scfm_bench.exceptions import CellFailed
from scfm_bench.registry import ADAPTERS

log = logging.getLogger(__name__)


class GeneformerParams(ScfmParams):
    pool: Literal["auto", "mean", "cls"] = Field("auto", description="auto: mean for V1, cls for V2 (the authors' defaults).")
    layer: int = Field(-1, le=0, description="Hidden layer relative to the last: -1 = penultimate (authors' default), 0 = last.")


@contextmanager
def _quiet_transformers(transformers):
    """Silence transformers' load report and weight-loading bar: we check the loading info ourselves
    and report through our own logging."""
    tlog = transformers.utils.logging
    level, bars = tlog.get_verbosity(), tlog.is_progress_bar_enabled()
    tlog.set_verbosity_error()
    tlog.disable_progress_bar()
    try:
        yield
    finally:
        tlog.set_verbosity(level)
        if bars:
            tlog.enable_progress_bar()


def _find(folder: Path, stem: str) -> Path | None:
    hits = sorted(folder.rglob(f"{stem}_gc*.pkl"))
    return hits[0] if hits else None


def rank_tokens(values: np.ndarray, token_ids: np.ndarray, n_counts: float, medians: np.ndarray, *, input_size: int,
                cls_id: int | None, eos_id: int | None) -> np.ndarray:
    """One cell's token ids: nonzero genes by decreasing normalised value, truncated, with V2 specials."""
    norm = values / n_counts * 10_000 / medians
    nz = np.flatnonzero(norm > 0)
    ranked = token_ids[nz[np.argsort(-norm[nz])]]  # numpy's default argsort, as the authors' tokenizer
    if cls_id is None:
        return ranked[:input_size].astype(np.int64)
    return np.concatenate([[cls_id], ranked[: input_size - 2], [eos_id]]).astype(np.int64)


@ADAPTERS.register("geneformer")
class Geneformer(Finetunable, ScfmAdapter):
    key = "geneformer"
    display_name = "Geneformer"
    version = "1"
    weights_id = "Geneformer (HF ctheodoris/Geneformer)"
    licence = "Apache-2.0 (code and weights)"
    description = "Geneformer V1/V2: rank-value encoding with gene medians; penultimate layer, mean (V1) or CLS (V2)."
    input_spec = InputSpec(gene_id_namespace="ensembl", raw_counts=True, organism="human", max_genes=4094,
                           needs_gpu=True, mem_gb=32)
    Params = GeneformerParams
    required_files = (("config.json",), ("model.safetensors", "pytorch_model.bin"))
    gene_namespace = "ensembl"
    token_budget = 16 * 4096
    # LoRA (fine-tuning): BERT's attention projections and feed-forward layers
    lora_targets = r".*encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense|intermediate\.dense|output\.dense)"

    def missing_files(self, folder: Path) -> list[str]:
        missing = super().missing_files(folder)
        return missing + [f"{s}_gc*.pkl" for s in ("token_dictionary", "gene_median_dictionary") if _find(folder, s) is None]

    def variant(self) -> str:
        folder = self.checkpoint_dir()
        tok = _find(folder, "token_dictionary") if folder and folder.is_dir() else None
        if tok is None:
            return "V1 or V2 (from the dictionaries)"
        return f"{'V2' if '<cls>' in pickle.loads(tok.read_bytes()) else 'V1'} ({tok.stem.split('_')[-1]})"

    def load(self, device: str) -> None:
        transformers = require("transformers", "scfm", self.key)
        self.device = device
        folder = self.require_checkpoint()
        try:
            self.tokens = pickle.loads(_find(folder, "token_dictionary").read_bytes())
            self.medians = pickle.loads(_find(folder, "gene_median_dictionary").read_bytes())
            mapping = _find(folder, "ensembl_mapping_dict")
            names = _find(folder, "gene_name_id_dict")
            self.ens_map = pickle.loads(mapping.read_bytes()) if mapping else None
            self.symbol_to_id = pickle.loads(names.read_bytes()) if names else None
            with _quiet_transformers(transformers):
                model, info = transformers.BertModel.from_pretrained(folder, output_loading_info=True, add_pooling_layer=False,
                                                                      attn_implementation="sdpa")
        except Exception as e:  # unreadable pickles or not a BERT folder: a wrong or damaged checkpoint
            raise CellFailed(f"model 'geneformer': cannot read the checkpoint in {folder}: {e}") from None
        if info.get("unexpected_keys"):  # the masked-LM head (cls.*): not used for embeddings
            log.info("model geneformer: ignoring %d checkpoint keys outside BertModel, e.g. %s", len(info["unexpected_keys"]),
                     sorted(info["unexpected_keys"])[:2])
        missing = [k for k in info["missing_keys"] if not k.endswith("position_ids")]
        if missing or info.get("mismatched_keys"):
            raise CellFailed(f"model 'geneformer': checkpoint {folder} lacks or mis-shapes weights: "
                             f"{(missing + [str(m) for m in info.get('mismatched_keys', [])])[:5]}")
        if "<pad>" not in self.tokens:
            raise CellFailed(f"model 'geneformer': the token dictionary in {folder} has no '<pad>'; is it a Geneformer dictionary?")
        self.v2 = "<cls>" in self.tokens
        self.pad_id = int(self.tokens["<pad>"])
        self.cls_id = int(self.tokens["<cls>"]) if self.v2 else None
        self.eos_id = int(self.tokens["<eos>"]) if self.v2 else None
        self.input_size = int(model.config.max_position_embeddings)
        if max(int(v) for v in self.tokens.values()) >= model.config.vocab_size:
            raise CellFailed(f"model 'geneformer': the token dictionary has ids beyond the model's vocabulary "
                             f"({model.config.vocab_size}): the dictionary belongs to another Geneformer version.")
        self.model = model.to(device).eval()

    @property
    def pool(self) -> str:
        return self.params.pool if self.params.pool != "auto" else ("cls" if self.v2 else "mean")

    def prepare(self, adata) -> Prepared:
        counts = raw_counts(adata, self.key)
        n_counts = np.asarray(counts.sum(axis=1)).ravel()  # all genes, before any mapping
        vocab = {g: 0 for g in self.tokens if g in self.medians}
        if self.ens_map is not None:  # collapse through the authors' mapping (many-to-one ids are summed)
            vocab = {g: 0 for g in self.ens_map if self.ens_map[g] in self.medians and self.ens_map[g] in self.tokens}
        m = match_genes(adata, counts, vocab, model=self.key, expected="Ensembl gene ids",
                        max_unmatched=self.params.max_unmatched_fraction, symbol_to_model=self.symbol_to_id)
        X, genes = m.counts, m.model_genes
        if self.ens_map is not None:
            import scipy.sparse as sp

            targets = list(dict.fromkeys(self.ens_map[g] for g in genes))
            col = {t: j for j, t in enumerate(targets)}
            M = sp.csr_matrix((np.ones(len(genes), np.float32), (np.arange(len(genes)), [col[self.ens_map[g]] for g in genes])),
                              shape=(len(genes), len(targets)))
            m.info["genes_collapsed"] += len(genes) - len(targets)
            X, genes = sp.csr_matrix(X @ M), targets
        cells = cell_entries(X)
        sizes = np.array([len(g) for g, _ in cells])
        ids = np.array([self.tokens[g] for g in genes], dtype=np.int64)
        med = np.array([self.medians[g] for g in genes], dtype=np.float64)
        empty = np.flatnonzero(sizes == 0)
        if len(empty) and not self.v2 and self.pool == "mean":
            raise CellFailed(f"model 'geneformer': {len(empty)} cells (e.g. {list(adata.obs_names[empty[:3]])}) have no counts on "
                             f"model genes, so V1 mean pooling is undefined. Fix: filter those cells out of the dataset.")
        items = [rank_tokens(v.astype(np.float64), ids[g], max(n_counts[i], 1.0), med[g], input_size=self.input_size,
                             cls_id=self.cls_id, eos_id=self.eos_id) for i, (g, v) in enumerate(cells)]
        limit = self.input_size - (2 if self.v2 else 0)
        self.run_info = {**m.info, "variant": "V2" if self.v2 else "V1", "pooling": f"{self.pool}, hidden layer {self.params.layer}",
                         "cells_truncated": int((sizes > limit).sum()), "cells_without_genes": int(len(empty))}
        return Prepared(dataset=items, collate=self._collate, n_cells=len(items), lengths=[len(t) for t in items])

    def _collate(self, items):
        import torch

        n = max(max(len(t) for t in items), 1)
        ids = torch.full((len(items), n), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(items), n), dtype=torch.long)
        for r, t in enumerate(items):
            ids[r, : len(t)] = torch.from_numpy(t)
            mask[r, : len(t)] = 1
        return ids, mask

    def _body(self):
        return self.model

    def embed_batch(self, batch):
        return self._forward(self.model, batch)

    def _forward(self, model, batch):
        import torch

        ids, mask = (t.to(self.device) for t in batch)
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        h = out.hidden_states[len(out.hidden_states) - 1 + self.params.layer].float()
        if self.pool == "cls":
            if not self.v2:
                raise CellFailed("model 'geneformer': pool=cls needs a V2 checkpoint (<cls> token); V1 has none. Use pool=mean.")
            return h[:, 0]
        keep = mask.clone()
        if self.v2:  # exclude <cls> and <eos> from the mean, as the authors' extractor does
            keep[:, 0] = 0
            keep[torch.arange(len(keep)), mask.sum(1) - 1] = 0
        return (h * keep.unsqueeze(-1)).sum(1) / keep.sum(1, keepdim=True).clamp(min=1)

    def _gene_table(self):
        if not hasattr(self, "model"):
            self.load("cpu")
        table = self.model.embeddings.word_embeddings.weight.detach().cpu().numpy()
        return table, {g: int(i) for g, i in self.tokens.items() if not str(g).startswith("<")}
