"""UCE, Universal Cell Embeddings (Rosen et al. 2023), 4- and 33-layer, reimplemented in plain torch
from the published behaviour.

Checkpoint folder (the authors' ``model_files/`` layout): ``4layer_model.torch`` or
``33l_8ep_1024t_1280.torch`` (state dict holding the token table ``pe_embedding.weight``: ESM2
protein embeddings + special + chromosome tokens), ``species_chrom.csv`` (species, chromosome,
gene_symbol, start), ``species_offsets.pkl`` (or helical's ``.json``; the human genes' first row in
the table) and ``protein_embeddings/Homo_sapiens.GRCh38.gene_symbol_to_embedding_ESM2.pt``, whose
key order gives each gene's row. ``all_tokens.torch`` is not needed: for the released species the
authors keep the checkpoint's own table. Every size comes from the tensor shapes; only the head
count (20) is not stored.

Per cell: ``sample_size`` genes drawn with replacement with probability ∝ log1p(count); grouped by
chromosome (chromosome blocks in random order, genes by genomic start inside a block); sequence =
``<cls>``, then per chromosome ``[chromosome token, genes…, <close>]``. The embedding is the last
layer's ``<cls>`` through the MLP decoder, L2-normalised (1,280-d). No cell filtering; cell order kept.

Padding mask. The authors pass ``1 - mask`` as a *float* key-padding mask, which torch adds to the
attention logits: pads are not masked but get +1, so an embedding depends on how many pads the cell
gets, i.e. on the longest cell of its batch. ``mask=float`` (default) reproduces that for the
authors' batching (``mask_batch_size`` cells in input order; 100 for 4 layers, 25 for 33, as in
their README) whatever batches the engine forms; ``mask=bool`` masks pads properly, so each cell is
embedded on its own.

Difference from upstream, on purpose: the draws come from a generator seeded by (seed, cell index),
not the global RNG (same distribution, not bit-identical), so a cell's genes do not depend on the
other cells (UCE issue #57); non-integer counts are refused instead of truncated.
"""

from __future__ import annotations

import json
import logging
import math
import pickle
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from scfm_bench.adapters._base import InputSpec, Prepared
from scfm_bench.adapters._scfm import ScfmAdapter, ScfmParams, cell_entries, match_genes, raw_counts, strict_state_dict
from scfm_bench.exceptions import CellFailed
from scfm_bench.registry import ADAPTERS

log = logging.getLogger(__name__)

WEIGHTS = {4: "4layer_model.torch", 33: "33l_8ep_1024t_1280.torch"}
PROTEIN_EMBEDDINGS = "protein_embeddings/Homo_sapiens.GRCh38.gene_symbol_to_embedding_ESM2.pt"
PAD, CHROM_CLOSE, CLS = 0, 2, 3  # the authors' special rows of the token table
_AUTHORS_BATCH = {WEIGHTS[4]: 100, WEIGHTS[33]: 25}  # their README, 80 GB GPU
_HEADS = ("binary_decoder.", "gene_embedding_layer.")  # training heads, unused for embeddings


class UCEParams(ScfmParams):
    n_layers: Literal[4, 33] | None = Field(
        None, description="Which weights file: 4 or 33 layers (default: 4layer_model.torch if present, else the 33-layer file).")
    mask: Literal["float", "bool"] = Field(
        "float", description="float: the authors' padding mask (pads get +1 attention, so embeddings depend on the batch); "
                             "bool: pads masked, each cell independent.")
    mask_batch_size: int | None = Field(
        None, ge=1, description="mask=float: cells per authors' batch, in input order (default 100 for 4 layers, 25 for 33).")
    sample_size: int = Field(1024, ge=1, description="Genes drawn per cell (with replacement, ∝ log1p(count)).")
    pad_length: int = Field(1536, ge=2, description="Longest sequence; longer cells are truncated (counted in the record).")
    n_heads: int = Field(20, ge=1, description="Attention heads (not stored in the weights; 20 in both released models).")
    n_chrom_tokens: int = Field(1895, ge=1, description="Chromosome tokens at the end of the token table (1,895 released).")


def read_chromosomes(path: Path, species: str = "human") -> tuple[dict[str, tuple[int, int]], int]:
    """{SYMBOL: (chromosome code, start)} for ``species`` and the number of codes. Codes are the
    authors' ``pd.Categorical(species + "_" + chromosome)`` over the whole file (all species, sorted);
    a symbol listed twice keeps its first row."""
    import pandas as pd

    df = pd.read_csv(path, dtype={"species": str, "chromosome": str, "gene_symbol": str})
    missing = {"species", "chromosome", "gene_symbol", "start"} - set(df.columns)
    if missing:
        raise CellFailed(f"model 'uce': {path} lacks the columns {sorted(missing)}; is it UCE's species_chrom.csv?")
    spec_chrom = pd.Categorical(df["species"] + "_" + df["chromosome"])
    df = df.assign(code=spec_chrom.codes)
    df = df[df["species"] == species].drop_duplicates("gene_symbol")
    table = {str(g).upper(): (int(c), int(s)) for g, c, s in zip(df["gene_symbol"], df["code"], df["start"])}
    return table, len(spec_chrom.categories)


def tokenize_cell(rows: np.ndarray, chroms: np.ndarray, starts: np.ndarray, counts: np.ndarray, *, sample_size: int,
                  chrom_offset: int, rng: np.random.Generator) -> np.ndarray:
    """One cell's token rows. ``rows``/``chroms``/``starts``/``counts``: its genes with counts > 0 (an empty
    cell gives ``<cls>`` alone). Draws with replacement ∝ log1p(count), then shuffles the chromosome order."""
    if counts.size == 0:
        return np.array([CLS], dtype=np.int64)
    w = np.log1p(counts.astype(np.float64))
    pick = rng.choice(counts.size, size=sample_size, replace=True, p=w / w.sum())
    blocks = np.unique(chroms[pick])
    rng.shuffle(blocks)
    out = [np.array([CLS])]
    for ch in blocks:
        genes = pick[chroms[pick] == ch]
        genes = genes[np.lexsort((genes, starts[genes]))]  # by start; equal starts by gene, so ties are deterministic
        out += [np.array([chrom_offset + ch]), rows[genes], np.array([CHROM_CLOSE])]
    return np.concatenate(out).astype(np.int64)


def authors_pads(lengths: np.ndarray, batch_size: int) -> np.ndarray:
    """Pads each cell gets in the authors' batching: batches of ``batch_size`` in input order, each padded
    to its longest cell (their collator truncates the 1,536-long rows to the batch maximum)."""
    longest = np.maximum.reduceat(lengths, np.arange(0, len(lengths), batch_size))
    return np.repeat(longest, batch_size)[: len(lengths)] - lengths


def torch_load(path: Path):
    """Memory-map the file (the weights hold a 3 GB token table) when it is in torch's zip format;
    files saved in the legacy format are read whole."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as e:
        if "mmap" not in str(e):
            raise
        return torch.load(path, map_location="cpu", weights_only=True)


def infer_shapes(state) -> dict[str, int]:
    """Architecture sizes from the tensor shapes (the authors hard-code 1280/5120/145,469)."""
    layers = {int(k.split(".")[2]) for k in state if k.startswith("transformer_encoder.layers.")}
    n_tokens, token_dim = state["pe_embedding.weight"].shape
    return {"n_tokens": n_tokens, "token_dim": token_dim, "d_model": state["encoder.0.weight"].shape[0],
            "d_hid": state["transformer_encoder.layers.0.linear1.weight"].shape[0], "n_layers": max(layers) + 1,
            "max_len": state["pos_encoder.pe"].shape[0], "decoder_hidden": state["decoder.0.0.weight"].shape[0],
            "output_dim": state["decoder.3.weight"].shape[0]}


def build_module(shapes: dict[str, int], n_heads: int):
    """UCE's encoder path with the authors' parameter names (heads left out)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    d, out, hid = shapes["d_model"], shapes["output_dim"], shapes["decoder_hidden"]

    def block(n_in, n_out):
        return nn.Sequential(nn.Linear(n_in, n_out), nn.LayerNorm(n_out), nn.GELU(), nn.Dropout(0.05))

    class PositionalEncoding(nn.Module):  # the sinusoid is a buffer of the checkpoint
        def __init__(self):
            super().__init__()
            self.register_buffer("pe", torch.zeros(shapes["max_len"], 1, d))

    class UCEModule(nn.Module):
        def __init__(self):
            super().__init__()
            self.pe_embedding = nn.Embedding(shapes["n_tokens"], shapes["token_dim"])
            self.encoder = nn.Sequential(nn.Linear(shapes["token_dim"], d), nn.GELU(), nn.LayerNorm(d))
            self.pos_encoder = PositionalEncoding()
            # seq-first as the authors: it keeps torch off its fused fast path, which (eval, batch_first=True)
            # would treat the float padding mask as boolean and silently drop the authors' +1 on pads
            layer = nn.TransformerEncoderLayer(d, n_heads, shapes["d_hid"], 0.05)
            self.transformer_encoder = nn.TransformerEncoder(layer, shapes["n_layers"], enable_nested_tensor=False)
            self.decoder = nn.Sequential(block(d, hid), block(hid, out), block(out, out), nn.Linear(out, out))

        def forward(self, ids, pad_bias):
            x = F.normalize(self.pe_embedding(ids.T), dim=2)  # (tokens, cells, dim)
            x = self.encoder(x) * math.sqrt(d) + self.pos_encoder.pe[: ids.shape[1]]
            cls = self.transformer_encoder(x, src_key_padding_mask=pad_bias)[0]
            return F.normalize(self.decoder(cls), dim=1)

    return UCEModule()


class _UpperCase(dict):
    """Symbol lookup that ignores case (the authors upper-case every symbol)."""

    def get(self, key, default=None):
        return super().get(str(key).upper(), default)


@ADAPTERS.register("uce")
class UCE(ScfmAdapter):
    key = "uce"
    display_name = "UCE (Universal Cell Embeddings)"
    version = "1"
    weights_id = "UCE 4layer_model / 33l_8ep_1024t_1280 (figshare)"
    licence = "MIT (code; weights from the same repository, no separate terms stated)"
    description = "UCE 4/33 layers: 1,024 genes sampled ∝ log1p(count), chromosome-ordered; CLS → decoder, L2-normalised."
    input_spec = InputSpec(gene_id_namespace="symbol", raw_counts=True, organism="human", needs_gpu=True, mem_gb=32)
    Params = UCEParams
    token_budget = 32 * 1536

    @property
    def required_files(self) -> tuple[tuple[str, ...], ...]:
        weights = (WEIGHTS[self.params.n_layers],) if self.params.n_layers else tuple(WEIGHTS.values())
        return weights, ("species_chrom.csv",), ("species_offsets.pkl", "species_offsets.json"), (PROTEIN_EMBEDDINGS,)

    def _weights_file(self, folder: Path | None) -> str:
        if self.params.n_layers:
            return WEIGHTS[self.params.n_layers]
        return next((f for f in WEIGHTS.values() if folder is not None and (folder / f).exists()), WEIGHTS[4])

    def variant(self) -> str:
        folder = self.checkpoint_dir()
        file = self._weights_file(folder)
        found = self.params.n_layers or (folder is not None and (folder / file).exists())
        return f"{file if found else ' or '.join(WEIGHTS.values())}, {self.params.mask} mask"

    def load(self, device: str) -> None:
        import torch

        self.device = device
        folder = self.require_checkpoint()
        weights = folder / self._weights_file(folder)
        offsets_file = next(folder / f for f in ("species_offsets.pkl", "species_offsets.json") if (folder / f).exists())
        try:
            state = torch_load(weights)
            genes = list(torch_load(folder / PROTEIN_EMBEDDINGS))
            offsets = (json.loads(offsets_file.read_text()) if offsets_file.suffix == ".json"
                       else pickle.loads(offsets_file.read_bytes()))
            shapes = infer_shapes(state)
            chroms, n_codes = read_chromosomes(folder / "species_chrom.csv")
        except KeyError as e:
            raise CellFailed(f"model 'uce': {weights} lacks {e}; is it a UCE state dict?") from None
        except CellFailed:
            raise
        except Exception as e:  # unreadable or not a torch/pickle file: a wrong or damaged folder
            raise CellFailed(f"model 'uce': cannot read the checkpoint in {folder}: {e}") from None
        if not isinstance(offsets, dict) or "human" not in offsets:
            raise CellFailed(f"model 'uce': {offsets_file} has no 'human' offset; is it UCE's species_offsets file?")
        p = self.params
        self.chrom_offset = shapes["n_tokens"] - p.n_chrom_tokens
        first = int(offsets["human"])
        if n_codes > p.n_chrom_tokens or first + len(genes) > self.chrom_offset or first < CLS + 1:
            raise CellFailed(f"model 'uce': the files do not fit the token table ({shapes['n_tokens']} rows, the last "
                             f"{p.n_chrom_tokens} for chromosomes): human genes take rows {first}..{first + len(genes) - 1} and "
                             f"species_chrom.csv has {n_codes} chromosomes. Are the files from the same UCE release?")
        if shapes["d_model"] % p.n_heads or p.pad_length > shapes["max_len"]:
            raise CellFailed(f"model 'uce': d_model {shapes['d_model']} / n_heads {p.n_heads} or pad_length {p.pad_length} "
                             f"(positional table: {shapes['max_len']}) do not fit; set uce.n_heads / uce.pad_length.")
        self.gene_row = {str(g).upper(): first + i for i, g in enumerate(genes)}
        # the vocabulary: genes with both a protein embedding and a chromosome position
        self.vocab = {g: (r, *chroms[g]) for g, r in self.gene_row.items() if g in chroms}
        self.shapes = shapes
        with torch.device("meta"):
            module = build_module(shapes, p.n_heads)
        strict_state_dict(self.key, module, state, ignore_prefixes=_HEADS, assign=True)
        self.module = module.to(device=device, dtype=torch.float32).eval()
        self.weights_file = weights.name

    def prepare(self, adata) -> Prepared:
        p = self.params
        m = match_genes(adata, raw_counts(adata, self.key), self.vocab, model=self.key,
                        expected="HGNC gene symbols with an ESM2 protein embedding and a row in species_chrom.csv",
                        max_unmatched=p.max_unmatched_fraction, symbol_to_model=_UpperCase({g: g for g in self.vocab}))
        rows, chroms, starts = np.array([self.vocab[g] for g in m.model_genes], dtype=np.int64).reshape(-1, 3).T
        tokens = [tokenize_cell(rows[g], chroms[g], starts[g], v, sample_size=p.sample_size, chrom_offset=self.chrom_offset,
                                rng=np.random.default_rng([self.seed, i])) for i, (g, v) in enumerate(cell_entries(m.counts))]
        lengths = np.array([len(t) for t in tokens])
        empty = int((lengths == 1).sum())
        truncated = int((lengths > p.pad_length).sum())
        tokens = [t[: p.pad_length] for t in tokens]
        lengths = np.minimum(lengths, p.pad_length)
        batch = p.mask_batch_size or _AUTHORS_BATCH[self.weights_file]
        pads = authors_pads(lengths, batch) if p.mask == "float" else np.zeros_like(lengths)
        if empty:
            log.warning("model uce: %d cells have no counts on UCE genes and are embedded from <cls> alone", empty)
        self.run_info = {**m.info, "variant": f"{self.shapes['n_layers']} layers ({self.weights_file})",
                         "pooling": "cls → decoder, L2-normalised", "mask": p.mask if p.mask == "bool" else f"float (authors'), batches of {batch} cells in input order",
                         "cells_truncated": truncated, "cells_without_genes": empty}
        items = list(zip(tokens, pads.tolist()))
        return Prepared(dataset=items, collate=self._collate, n_cells=len(items), lengths=(lengths + pads).tolist())

    @staticmethod
    def _collate(items):
        """Token ids padded with <pad>, and the additive key mask: 0 on tokens, +1 on the pads the authors' batch
        would have (float mask), -inf on any further padding (engine batches), so batching never changes a cell."""
        import torch

        n = max(len(t) + k for t, k in items)
        ids = torch.full((len(items), n), PAD, dtype=torch.long)
        bias = torch.full((len(items), n), float("-inf"))
        for r, (t, k) in enumerate(items):
            ids[r, : len(t)] = torch.from_numpy(t)
            bias[r, : len(t)] = 0.0
            bias[r, len(t) : len(t) + k] = 1.0
        return ids, bias

    def embed_batch(self, batch):
        ids, bias = (t.to(self.device) for t in batch)
        return self.module(ids, bias)

    def _gene_table(self):
        if not hasattr(self, "module"):
            self.load("cpu")
        return self.module.pe_embedding.weight.detach().cpu().numpy(), self.gene_row
