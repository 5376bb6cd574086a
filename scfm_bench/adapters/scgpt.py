"""scGPT whole-human (Cui et al. 2024), reimplemented in plain torch from the published behaviour.

Checkpoint folder: ``best_model.pt`` (state dict; flash-attn-1 ``Wqkv`` keys, or the ``_impl.``
variant, mapped to torch attention), ``vocab.json`` and ``args.json``. Per cell: the nonzero genes
(in var order) are binned into per-cell quantile bins 1..n_bins-1 with random tie-breaking, then
subsampled at random to ``max_length - 1`` genes; ``<cls>`` (value ``pad_value``) goes first. The
embedding is the last layer's ``<cls>`` output, L2-normalised (512-d for whole-human).

Difference from upstream, on purpose: every random draw comes from a generator seeded by
(seed, cell index), so an embedding does not depend on the batch size or the other cells; upstream
draws from the global RNG (not bit-identical, same distribution).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

import numpy as np
from pydantic import Field

from scfm_bench.adapters._base import InputSpec, Prepared
from scfm_bench.adapters._scfm import Finetunable, ScfmAdapter, ScfmParams, cell_entries, match_genes, raw_counts, strict_state_dict
from scfm_bench.exceptions import CellFailed
from scfm_bench.registry import ADAPTERS

log = logging.getLogger(__name__)

# training heads present in scGPT checkpoints and unused for embeddings
_HEADS = ("decoder.", "cls_decoder.", "mvc_decoder.", "grad_reverse_discriminator.", "batch_encoder.", "dsbn.", "bn.",
          "flag_encoder.", "pert_encoder.", "sim.")


class ScGPTParams(ScfmParams):
    max_length: int = Field(1200, ge=2, description="Tokens per cell including <cls>; longer cells are subsampled at random.")
    n_bins: int = Field(51, ge=3, description="Value bins (upstream's collator hard-codes 51: bins 1..50).")
    use_hvg: bool = Field(True, description="Only the highly variable genes of the preprocessing (tutorial: HVG subset).")


def bin_values(values: np.ndarray, n_bins: int, rng: np.random.Generator) -> np.ndarray:
    """Per-cell quantile binning of nonzero values into 1..n_bins-1; ties land on a uniformly drawn bin
    among those whose edges equal the value (the collator's randomised digitize)."""
    if values.size == 0:
        return values.astype(np.int64)
    edges = np.quantile(values, np.linspace(0, 1, n_bins - 1))
    left = np.digitize(values, edges)
    right = np.digitize(values, edges, right=True)
    return np.ceil(rng.random(values.size) * (right - left) + left).astype(np.int64)


def tokenize_cell(gene_idx: np.ndarray, values: np.ndarray, *, cls_id: int, pad_value: float, n_bins: int, max_length: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(token ids, values) for one cell: binned before subsampling, as upstream; ``<cls>`` first."""
    bins = bin_values(values, n_bins, rng).astype(np.float32)
    if gene_idx.size > max_length - 1:
        keep = rng.permutation(gene_idx.size)[: max_length - 1]
        gene_idx, bins = gene_idx[keep], bins[keep]
    return (np.concatenate([[cls_id], gene_idx]).astype(np.int64),
            np.concatenate([[pad_value], bins]).astype(np.float32))


def _build_module(n_tokens: int, args: dict, pad_id: int):
    import torch
    from torch import nn

    d = int(args["embsize"])

    class GeneEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(n_tokens, d, padding_idx=pad_id)
            self.enc_norm = nn.LayerNorm(d)

        def forward(self, x):
            return self.enc_norm(self.embedding(x))

    class ValueEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear1, self.linear2, self.norm = nn.Linear(1, d), nn.Linear(d, d), nn.LayerNorm(d)

        def forward(self, v):
            h = torch.relu(self.linear1(v.clamp(max=512).unsqueeze(-1)))
            return self.norm(self.linear2(h))

    class ScGPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = GeneEncoder()
            self.value_encoder = ValueEncoder()
            layer = nn.TransformerEncoderLayer(d, int(args["nheads"]), int(args["d_hid"]), float(args.get("dropout", 0.2)),
                                               batch_first=True)
            self.transformer_encoder = nn.TransformerEncoder(layer, int(args["nlayers"]), enable_nested_tensor=False)

        def forward(self, ids, values, pad_mask):
            h = self.encoder(ids) + self.value_encoder(values)
            return self.transformer_encoder(h, src_key_padding_mask=pad_mask)[:, 0]

    return ScGPT()


def to_torch_keys(state: Mapping) -> dict:
    """flash-attn-1 names (``self_attn.Wqkv``, main-branch ``self_attn._impl.*``) -> nn.MultiheadAttention names."""
    out = {}
    for k, v in state.items():
        k = k.replace("self_attn._impl.", "self_attn.").replace("self_attn.Wqkv.", "self_attn.in_proj_")
        out[k] = v
    return out


@ADAPTERS.register("scgpt")
class ScGPT(Finetunable, ScfmAdapter):
    key = "scgpt"
    display_name = "scGPT (whole-human)"
    version = "1"
    weights_id = "scGPT_human"
    licence = "code MIT; weights: no licence stated"
    description = "scGPT whole-human: binned values, CLS of the last layer, L2-normalised (plain-torch reimplementation)."
    input_spec = InputSpec(gene_id_namespace="symbol", raw_counts=True, organism="human", max_genes=1199,
                           needs_gpu=True, mem_gb=32)
    Params = ScGPTParams
    required_files = (("best_model.pt",), ("vocab.json",), ("args.json",))
    token_budget = 64 * 1200
    # LoRA (fine-tuning): the transformer's feed-forward layers. Not its nn.MultiheadAttention: peft adapts
    # that by merging LoRA into the frozen weights and unmerging after each forward, which drifts them by
    # float rounding (~1e-7), so the base would not stay bit-identical.
    lora_targets = r".*transformer_encoder\.layers\.\d+\.(linear1|linear2)"

    def variant(self) -> str:
        return "whole-human layout"

    def load(self, device: str) -> None:
        import torch

        self.device = device
        folder = self.require_checkpoint()
        try:
            self.vocab = json.loads((folder / "vocab.json").read_text())
            self.args = json.loads((folder / "args.json").read_text())
            state = torch.load(folder / "best_model.pt", map_location="cpu", weights_only=True)
        except Exception as e:  # unreadable or not a torch/JSON file: a wrong or damaged folder
            raise CellFailed(f"model 'scgpt': cannot read the checkpoint in {folder}: {e}") from None
        pad_token = self.args.get("pad_token", "<pad>")
        for tok in (pad_token, "<cls>"):
            if tok not in self.vocab:
                raise CellFailed(f"model 'scgpt': {folder / 'vocab.json'} has no {tok!r} token; is this an scGPT vocabulary?")
        missing = [k for k in ("embsize", "nheads", "d_hid", "nlayers") if k not in self.args]
        if missing:
            raise CellFailed(f"model 'scgpt': {folder / 'args.json'} lacks {missing}; is this an scGPT args.json?")
        if not isinstance(state, Mapping):
            raise CellFailed(f"model 'scgpt': {folder / 'best_model.pt'} is not a state dict.")
        self.pad_id, self.cls_id = int(self.vocab[pad_token]), int(self.vocab["<cls>"])
        self.pad_value = float(self.args.get("pad_value", -2))
        n_tokens = max(int(v) for v in self.vocab.values()) + 1
        self.module = _build_module(n_tokens, self.args, self.pad_id)
        strict_state_dict(self.key, self.module, to_torch_keys(state), ignore_prefixes=_HEADS)
        self.module.to(device).eval()

    def prepare(self, adata) -> Prepared:
        p = self.params
        if p.use_hvg and "highly_variable" in adata.var:
            adata = adata[:, adata.var["highly_variable"].to_numpy()]
        m = match_genes(adata, raw_counts(adata, self.key), self.vocab, model=self.key, expected="HGNC gene symbols",
                        max_unmatched=p.max_unmatched_fraction)
        ids = np.array([self.vocab[g] for g in m.model_genes], dtype=np.int64)
        cells = cell_entries(m.counts)
        items = [tokenize_cell(ids[g], v, cls_id=self.cls_id, pad_value=self.pad_value, n_bins=p.n_bins, max_length=p.max_length,
                               rng=np.random.default_rng([self.seed, i])) for i, (g, v) in enumerate(cells)]
        lengths = [len(t) for t, _ in items]
        self.run_info = {**m.info, "cells_truncated": int(sum(len(g) > p.max_length - 1 for g, _ in cells)),
                         "cells_without_genes": int(sum(n == 1 for n in lengths)), "pooling": "cls, L2-normalised"}
        return Prepared(dataset=items, collate=self._collate, n_cells=len(items), lengths=lengths)

    def _collate(self, items):
        import torch

        n = max(len(t) for t, _ in items)
        ids = torch.full((len(items), n), self.pad_id, dtype=torch.long)
        vals = torch.full((len(items), n), self.pad_value, dtype=torch.float32)
        for r, (t, v) in enumerate(items):
            ids[r, : len(t)] = torch.from_numpy(t)
            vals[r, : len(v)] = torch.from_numpy(v)
        return ids, vals

    def _body(self):
        return self.module

    def _forward(self, module, batch):
        """The last layer's ``<cls>`` output (before the embedding's L2 normalisation)."""
        ids, vals = (t.to(self.device) for t in batch)
        return module(ids, vals, ids == self.pad_id)

    def embed_batch(self, batch):
        import torch

        return torch.nn.functional.normalize(self._forward(self.module, batch).float(), dim=1)

    def _gene_table(self):
        if not hasattr(self, "module"):
            self.load("cpu")
        table = self.module.encoder.embedding.weight.detach().cpu().numpy()
        return table, {g: int(i) for g, i in self.vocab.items() if not g.startswith("<")}
