"""Per-cell labels -> Cell Ontology graph nodes, with a report of what could not be mapped.

A value is taken as an id when it is one of the ontology's terms (a deprecated id goes through its
``replaced_by``, with a warning); otherwise it is looked up, case-insensitively, among term names and
then synonyms of non-deprecated terms. Values that stay unmapped are listed, their cells dropped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from scfm_bench.ontology.core import CellOntology

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Mapping:
    ids: np.ndarray  # one graph node per cell, "" where unmapped
    by_value: dict[str, str]  # distinct input value -> node
    unmapped: dict[str, int]  # input value -> number of cells
    replaced: dict[str, str]  # deprecated id -> replacement
    by_name: dict[str, str]  # a name or synonym -> id

    @cached_property
    def mask(self) -> np.ndarray:
        return self.ids != ""

    @property
    def n_unmapped_cells(self) -> int:
        return int((~self.mask).sum())

    def report(self) -> dict:
        """What an ontology-metric record carries about the mapping."""
        return {"n_cells_unmapped": self.n_unmapped_cells, "unmapped_labels": sorted(self.unmapped),
                "deprecated_replaced": dict(sorted(self.replaced.items())),
                "names_mapped": dict(sorted(self.by_name.items()))}


def _name_index(onto: CellOntology) -> tuple[dict[str, str], dict[str, str]]:
    names, synonyms = {}, {}
    for tid in sorted(onto.terms):  # sorted: a name shared by two terms maps to the smaller id, always
        t = onto.terms[tid]
        if t.deprecated or tid not in onto:
            continue
        names.setdefault(t.label.strip().lower(), tid)
        for s in t.synonyms:
            synonyms.setdefault(s.strip().lower(), tid)
    return names, synonyms


def map_to_ontology(values, onto: CellOntology) -> Mapping:
    values = np.asarray(values).astype(str)
    uniq, inverse = np.unique(values, return_inverse=True)
    names = synonyms = None
    by_value, replaced, by_name, unmapped = {}, {}, {}, {}
    for v in map(str, uniq):
        node = onto.resolve(v)
        if node is not None and node != v:
            replaced[v] = node
        if node is None and v not in onto.terms:
            if names is None:
                names, synonyms = _name_index(onto)
            key = v.strip().lower()
            node = names.get(key) or synonyms.get(key)
            if node is not None:
                by_name[v] = node
        by_value[v] = node or ""
    ids = np.array([by_value[str(v)] for v in uniq], dtype=object)[inverse] if len(uniq) else np.array([], dtype=object)
    counts = np.bincount(inverse, minlength=len(uniq))
    unmapped = {str(v): int(c) for v, c in zip(uniq, counts) if not by_value[str(v)]}
    if replaced:
        log.warning("deprecated Cell Ontology ids replaced: %s", ", ".join(f"{k} -> {v}" for k, v in replaced.items()))
    if unmapped:
        log.warning("labels not in the Cell Ontology graph (cells dropped): %s", ", ".join(sorted(unmapped)[:10]))
    return Mapping(ids.astype(str), by_value, unmapped, replaced, by_name)
