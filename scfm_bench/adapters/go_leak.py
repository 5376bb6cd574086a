"""Positive control for gene_function: a gene's embedding is its own GO-term indicator vector (over
every term of the GO gene sets, all aspects) plus seeded Gaussian noise. It leaks the labels, so it
must score near the top: the metrics' direction and ceiling made visible."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from scfm_bench.adapters._base import GeneAdapter
from scfm_bench.registry import ADAPTERS


class GoLeakParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    noise_sd: float = Field(0.1, ge=0, description="sd of the Gaussian noise added to the 0/1 indicators.")
    go: str = Field("default", description="GO gene sets to leak: keep equal to the task's params.go.")


@ADAPTERS.register("go_leak")
class GoLeakControl(GeneAdapter):
    key = "go_leak"
    display_name = "GO label leak (control)"
    kind = "ceiling"  # the label leak: the top of the scale
    description = "A gene's GO-term indicators (the labels) plus N(0, 0.1²) noise: the positive control of gene_function."
    licence = "CC-BY-4.0 (Gene Ontology Consortium)"
    Params = GoLeakParams

    def gene_embeddings(self, genes: Sequence[str], *, adata=None) -> np.ndarray:
        from scfm_bench.data.go import load_gene_sets

        sets = load_gene_sets(self.params.go)
        terms = list(sets.terms.index)
        symbol_of = {e: s for s, ids in sets.ensembl.items() for e in ids}
        member = {}
        for j, t in enumerate(terms):
            for s in sets.members[t]:
                member.setdefault(s, []).append(j)
        out = np.zeros((len(genes), len(terms)), dtype=np.float32)
        for i, g in enumerate(genes):
            out[i, member.get(symbol_of.get(str(g).split(".")[0], str(g)), [])] = 1.0
            # noise seeded per gene, so a gene's vector does not depend on which other genes are asked for
            rng = np.random.default_rng([self.seed, zlib.crc32(str(g).encode())])
            out[i] += rng.normal(0.0, self.params.noise_sd, len(terms)).astype(np.float32)
        return out
