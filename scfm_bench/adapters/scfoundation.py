"""scFoundation 01B (Hao et al. 2024), encoder only, reimplemented in plain torch from the published behaviour.

Checkpoint folder: ``models.ckpt`` (or ``models/models.ckpt``, the authors' repository layout), a dict
keyed ``'cell'``/``'rde'``/``'gene'`` whose entries hold ``config`` and a ``model.``-prefixed
``state_dict``, and the gene list ``OS_scRNA_gene_index.19264.tsv`` (``gene_name``, ``index``). Sizes
come from the tensor shapes (heads, ``bin_alpha`` from the config); the Performer decoder is not run.

Per cell (the authors' ``get_embedding.py`` with ``--pre_normalized F``): dataset genes are mapped onto
the gene list (always; missing genes count as zero, and the sequence follows the list's order), the
total count is the sum over those genes, values are log1p(count / total * 1e4) of the nonzero genes,
then T and S are appended with S = log10(total) and T from ``tgthighres``: ``t4`` (the default) T = 4,
``fX`` T = log10(total * X), ``aX`` T = log10(total) + X. Gene positions are the list rows; T and S
take positions n_genes and n_genes + 1. The encoder attends over the nonzero genes + T + S only;
``pool=all`` concatenates [S, T, max over genes, mean over genes] (4 x 768 = 3,072-d, not
normalised); ``pool=max`` is the max over every position (768-d).

Differences from upstream, on purpose: padding is handled per row (T/S are each row's last two real
tokens; pads never enter attention, max or mean), so a batch gives what upstream's one-cell-at-a-time
loop gives; T and S are always kept (upstream drops a value <= 0, e.g. S of a one-count cell, and then
fails on an empty gene pool); a cell with no counts on the gene list fails the cell (S = log10 0 is
undefined; upstream crashes). ``max_genes`` (off by default, as upstream) keeps the most expressed genes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from scfm_bench.adapters._base import InputSpec, Prepared
from scfm_bench.adapters._scfm import ScfmAdapter, ScfmParams, cell_entries, match_genes, raw_counts, strict_state_dict
from scfm_bench.exceptions import CellFailed
from scfm_bench.registry import ADAPTERS

log = logging.getLogger(__name__)

GENE_LIST = "OS_scRNA_gene_index.19264.tsv"
# pre-training parts of the MAE that cell embeddings do not use
_HEADS = ("decoder.", "decoder_embed.", "norm.", "to_final.")


class ScFoundationParams(ScfmParams):
    version: Literal["cell", "rde"] = Field(
        "cell", description="Entry of models.ckpt: cell (the authors' default for cell embeddings) or rde (read-depth enhancement).")
    tgthighres: str = Field("t4", pattern=r"^[tfa]\d+(\.\d+)?$",
                            description="T token: tX -> X, fX -> log10(total*X), aX -> log10(total)+X (authors' default t4).")
    pool: Literal["all", "max"] = Field("all", description="all: [S, T, max, mean] (4 x hidden, 3,072-d); max: max over all tokens.")
    max_genes: int | None = Field(None, ge=1, description="Keep at most this many nonzero genes per cell, the most expressed "
                                                          "(default: all, as the authors; attention cost grows with its square).")

    @field_validator("tgthighres")
    @classmethod
    def _positive_f(cls, v: str) -> str:
        if v[0] == "f" and float(v[1:]) == 0:
            raise ValueError("fX needs X > 0 (T = log10(total*X))")
        return v


def tokenize_cell(positions: np.ndarray, counts: np.ndarray, *, n_genes: int, tgthighres: str,
                  max_genes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(values, position ids) of one cell: its nonzero genes in gene-list order, then T and S.

    ``positions`` are gene-list rows, ``counts`` the cell's raw counts on them (total > 0)."""
    total = float(counts.sum())
    order = np.argsort(positions, kind="stable")
    positions, counts = positions[order], counts[order]
    nz = counts > 0
    positions, x = positions[nz], np.log1p(counts[nz] / total * 1e4)
    if max_genes is not None and x.size > max_genes:
        keep = np.sort(np.argsort(-x, kind="stable")[:max_genes])  # most expressed, ties by list order
        positions, x = positions[keep], x[keep]
    s = np.log10(total)
    mode, k = tgthighres[0], float(tgthighres[1:])
    t = {"t": k, "f": np.log10(total * k), "a": s + k}[mode]
    return (np.concatenate([x, [t, s]]).astype(np.float32),
            np.concatenate([positions, [n_genes, n_genes + 1]]).astype(np.int64))


def _build_module(*, n_pos: int, dim: int, depth: int, heads: int, ff: int, bin_num: int, bin_alpha: float):
    import torch
    from torch import nn

    class AutoBinEmbedding(nn.Module):
        """A value -> soft assignment over ``bin_num`` learned bins -> mixture of the bin embeddings."""

        def __init__(self):
            super().__init__()
            self.mlp, self.mlp2 = nn.Linear(1, bin_num), nn.Linear(bin_num, bin_num)
            self.emb, self.emb_mask, self.emb_pad = nn.Embedding(bin_num, dim), nn.Embedding(1, dim), nn.Embedding(1, dim)

        def forward(self, values, pad):
            h = nn.functional.leaky_relu(self.mlp(values.unsqueeze(-1)), 0.1)
            weights = torch.softmax(bin_alpha * h + self.mlp2(h), dim=-1)
            # emb_mask marks masked values in pre-training; log-normalised inputs never equal its id
            return torch.where(pad.unsqueeze(-1), self.emb_pad.weight[0], weights @ self.emb.weight)

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.transformer_encoder = nn.ModuleList(
                nn.TransformerEncoderLayer(dim, heads, ff, batch_first=True) for _ in range(depth))
            self.norm = nn.LayerNorm(dim)

        def forward(self, h, pad):
            for layer in self.transformer_encoder:
                h = layer(h, src_key_padding_mask=pad)
            return self.norm(h)

    class ScFoundationEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.token_emb = AutoBinEmbedding()
            self.pos_emb = nn.Embedding(n_pos, dim)
            self.encoder = Encoder()

        def forward(self, values, positions, pad):
            return self.encoder(self.token_emb(values, pad) + self.pos_emb(positions), pad)

    return ScFoundationEncoder()


def module_sizes(state: Mapping, config: Mapping, where: Path) -> dict:
    """Architecture from tensor shapes; heads and bin_alpha (not visible in shapes) from the config."""
    layers = {int(m.group(1)) for k in state if (m := re.match(r"encoder\.transformer_encoder\.(\d+)\.", k))}
    need = ("pos_emb.weight", "token_emb.emb.weight", "encoder.transformer_encoder.0.linear1.weight")
    if missing := [k for k in need if k not in state]:
        raise CellFailed(f"model 'scfoundation': {where} has no {missing[0]!r}; is this an scFoundation (mae_autobin) checkpoint?")
    enc = config.get("encoder") or {}
    missing = [k for k, v in (("encoder.heads", enc.get("heads")), ("bin_alpha", config.get("bin_alpha"))) if v is None]
    if missing:
        raise CellFailed(f"model 'scfoundation': the config in {where} lacks {missing}; is this an scFoundation checkpoint?")
    n_pos, dim = state["pos_emb.weight"].shape
    return {"n_pos": int(n_pos), "dim": int(dim), "depth": max(layers) + 1, "heads": int(enc["heads"]),
            "ff": int(state["encoder.transformer_encoder.0.linear1.weight"].shape[0]),
            "bin_num": int(state["token_emb.emb.weight"].shape[0]), "bin_alpha": float(config["bin_alpha"])}


@ADAPTERS.register("scfoundation")
class ScFoundation(ScfmAdapter):
    key = "scfoundation"
    display_name = "scFoundation (01B)"
    version = "1"
    weights_id = "scFoundation 01B models.ckpt"
    licence = "code Apache-2.0; weights: scFoundation model licence, non-commercial research only"
    description = "scFoundation 01B encoder: 19,264-gene list, log1p CP10k + T/S tokens; [S, T, max, mean] (plain-torch reimplementation)."
    input_spec = InputSpec(gene_id_namespace="symbol", raw_counts=True, organism="human", max_genes=19264,
                           needs_gpu=True, mem_gb=32)
    Params = ScFoundationParams
    required_files = (("models.ckpt", "models/models.ckpt"), (GENE_LIST,))
    token_budget = 32 * 2048

    def variant(self) -> str:
        p = self.params
        return f"01B '{p.version}' entry, T/S {p.tgthighres}, pool {p.pool}"

    def load(self, device: str) -> None:
        import pandas as pd
        import torch

        self.device = device
        folder = self.require_checkpoint()
        path = next(folder / f for f in self.required_files[0] if (folder / f).exists())
        try:
            table = pd.read_csv(folder / GENE_LIST, sep="\t")
            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)  # mmap: only the used entry is read
        except Exception as e:  # unreadable or not a torch/TSV file: a wrong or damaged folder
            raise CellFailed(f"model 'scfoundation': cannot read the checkpoint in {folder}: {e}") from None
        if "gene_name" not in table or table["gene_name"].duplicated().any():
            raise CellFailed(f"model 'scfoundation': {folder / GENE_LIST} needs a gene_name column of distinct symbols "
                             f"(columns: {list(table.columns)[:3]}); is it the authors' gene list?")
        genes = table["gene_name"].astype(str).tolist()
        entry = ckpt.get(self.params.version) if isinstance(ckpt, Mapping) else None
        if not isinstance(entry, Mapping) or not isinstance(entry.get("state_dict"), Mapping):
            raise CellFailed(f"model 'scfoundation': {path} has no '{self.params.version}' entry with a state_dict "
                             f"(found keys {list(ckpt)[:5] if isinstance(ckpt, Mapping) else type(ckpt).__name__}); "
                             f"is this scFoundation's models.ckpt?")
        state = {k.removeprefix("model."): v for k, v in entry["state_dict"].items()}
        cfg = entry.get("config") or {}
        config = {**(cfg.get("model_config") or {}).get(cfg.get("model"), {}), **(cfg.get("dataset_config") or {}).get("rnaseq", {})}
        sizes = module_sizes(state, config, path)
        if len(genes) + 2 > sizes["n_pos"]:
            raise CellFailed(f"model 'scfoundation': the gene list has {len(genes)} genes, but the checkpoint's position table "
                             f"has {sizes['n_pos']} rows (genes + T + S must fit); the list and models.ckpt do not belong together.")
        if config.get("seq_len", len(genes) + 2) != len(genes) + 2:
            log.warning("model scfoundation: the checkpoint's seq_len %s is not the gene list's %d genes + T + S",
                        config["seq_len"], len(genes))
        self.genes = genes
        self.module = _build_module(**sizes)
        strict_state_dict(self.key, self.module, state, ignore_prefixes=_HEADS)
        self.module.to(device).eval()

    def prepare(self, adata) -> Prepared:
        p = self.params
        index = {g: i for i, g in enumerate(self.genes)}
        m = match_genes(adata, raw_counts(adata, self.key), index, model=self.key, expected="HGNC gene symbols (scFoundation's list)",
                        max_unmatched=p.max_unmatched_fraction)
        X = m.counts
        pos = np.array([index[g] for g in m.model_genes], dtype=np.int64)
        totals = np.asarray(X.sum(axis=1)).ravel()
        if (empty := np.flatnonzero(totals == 0)).size:
            raise CellFailed(f"model 'scfoundation': {len(empty)} cells (e.g. {list(adata.obs_names[empty[:3]])}) have no counts on "
                             f"the model's genes, so their S token (log10 of the total count) is undefined. "
                             f"Fix: filter those cells out of the dataset.")
        cells = cell_entries(X)
        items = [tokenize_cell(pos[g], v.astype(np.float64), n_genes=len(self.genes), tgthighres=p.tgthighres,
                               max_genes=p.max_genes) for g, v in cells]
        self.run_info = {**m.info, "tgthighres": p.tgthighres, "pooling": p.pool,
                         "cells_truncated": sum(len(g) > p.max_genes for g, _ in cells) if p.max_genes else 0}
        return Prepared(dataset=items, collate=self._collate, n_cells=len(items), lengths=[len(v) for v, _ in items])

    @staticmethod
    def _collate(items):
        import torch

        n = max(len(v) for v, _ in items)
        values = torch.zeros((len(items), n), dtype=torch.float32)
        positions = torch.zeros((len(items), n), dtype=torch.long)
        pad = torch.ones((len(items), n), dtype=torch.bool)
        for r, (v, p) in enumerate(items):
            values[r, : len(v)], positions[r, : len(p)], pad[r, : len(v)] = torch.from_numpy(v), torch.from_numpy(p), False
        return values, positions, pad

    def embed_batch(self, batch):
        import torch

        values, positions, pad = (t.to(self.device) for t in batch)
        h = self.module(values, positions, pad).float()
        if self.params.pool == "max":
            return h.masked_fill(pad.unsqueeze(-1), -torch.inf).amax(1)
        n = (~pad).sum(1)  # each row: genes, then T, then S
        rows = torch.arange(len(h), device=h.device)
        genes = (torch.arange(h.shape[1], device=h.device)[None] < (n - 2)[:, None]).unsqueeze(-1)
        gene_max = h.masked_fill(~genes, -torch.inf).amax(1)
        gene_mean = (h * genes).sum(1) / (n - 2).clamp(min=1)[:, None]
        return torch.cat([h[rows, n - 1], h[rows, n - 2], gene_max, gene_mean], dim=1)

    def _gene_table(self):
        """The gene-identity table ``pos_emb`` (one learned row per gene-list position), by gene symbol."""
        if not hasattr(self, "module"):
            self.load("cpu")
        table = self.module.pos_emb.weight.detach().cpu().numpy()[: len(self.genes)]
        return table, {g: i for i, g in enumerate(self.genes)}
