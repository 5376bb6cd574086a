"""The Cell Ontology as a child -> parent DAG, with the queries the ontology metrics need.

Edges are the direct parents (distance-1 ancestors) between non-deprecated terms; in the shipped CL
they mix is_a and part_of (cellxgene-ontology-guide does not store the relation). All queries are
deterministic: nothing depends on set iteration order, so results do not change with PYTHONHASHSEED.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import networkx as nx
    import pronto


@dataclass(frozen=True)
class Term:
    id: str
    label: str = ""
    synonyms: tuple[str, ...] = ()
    deprecated: bool = False
    replaced_by: str | None = None


@dataclass(eq=False)
class CellOntology:
    """Terms plus direct parents. ``version`` and ``sha256`` identify the source file in records."""

    terms: dict[str, Term]
    parents: dict[str, tuple[str, ...]]  # child -> direct parents, both ends non-deprecated
    version: str
    sha256: str
    source: str
    _dist_up: dict[str, dict[str, int]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_edges(cls, edges, *, version: str = "custom", labels: dict[str, str] | None = None):
        """Build from (child, parent) pairs (the OnClass edge-file format); for tests and custom graphs."""
        import hashlib

        edges = list(edges)
        sha256 = hashlib.sha256(repr(sorted(edges)).encode()).hexdigest()
        parents: dict[str, list[str]] = {}
        for child, parent in edges:
            if parent not in parents.setdefault(child, []):
                parents[child].append(parent)
            parents.setdefault(parent, [])
        labels = labels or {}
        terms = {t: Term(t, labels.get(t, "")) for t in parents}
        return cls(terms, {c: tuple(p) for c, p in parents.items()}, version, sha256, "edges")

    @property
    def info(self) -> dict[str, str]:
        """What every ontology-metric record carries."""
        return {"ontology_version": self.version, "ontology_sha256": self.sha256, "ontology_source": self.source}

    @cached_property
    def nodes(self) -> list[str]:
        """Terms taking part in at least one edge, sorted (the graph of the metrics, spec §3.4b)."""
        used = {c for c, ps in self.parents.items() if ps} | {p for ps in self.parents.values() for p in ps}
        return sorted(used)

    @cached_property
    def edges(self) -> list[tuple[str, str]]:
        return sorted((c, p) for c, ps in self.parents.items() for p in ps)

    @cached_property
    def graph(self) -> "nx.DiGraph":
        """networkx DiGraph with edges child -> parent."""
        import networkx as nx

        g = nx.DiGraph()
        g.add_nodes_from(self.nodes)
        g.add_edges_from(self.edges)
        return g

    @cached_property
    def roots(self) -> frozenset[str]:
        return frozenset(n for n in self.nodes if not self.parents.get(n))

    def __contains__(self, term_id: str) -> bool:
        return term_id in self.graph

    def distances_up(self, term_id: str) -> dict[str, int]:
        """Shortest directed distance from ``term_id`` up to each of its ancestors (itself at 0)."""
        d = self._dist_up.get(term_id)
        if d is None:
            d = {term_id: 0}
            frontier = [term_id]
            while frontier:  # BFS over parents; the DAG is small, so plain Python is fastest
                nxt = []
                for t in frontier:
                    for p in self.parents.get(t, ()):
                        if p not in d:
                            d[p] = d[t] + 1
                            nxt.append(p)
                frontier = nxt
            self._dist_up[term_id] = d
        return d

    def ancestors(self, term_id: str, *, include_self: bool = False) -> set[str]:
        out = set(self.distances_up(term_id))
        return out if include_self else out - {term_id}

    def descendants(self, term_id: str, *, include_self: bool = False) -> set[str]:
        import networkx as nx

        out = nx.ancestors(self.graph, term_id)  # child -> parent edges: graph ancestors are ontology descendants
        return out | {term_id} if include_self else out

    def distance(self, descendant: str, ancestor: str) -> int | None:
        """Directed path length from ``ancestor`` down to ``descendant``; None if it is not an ancestor."""
        return self.distances_up(descendant).get(ancestor)

    def minimal_common_ancestors(self, a: str, b: str) -> list[str]:
        """Common ancestors (each term counting as its own ancestor) with no common ancestor below them; sorted."""
        common = set(self.distances_up(a)) & set(self.distances_up(b))
        strictly_above = set()
        for c in common:
            strictly_above |= set(self.distances_up(c)) - {c}
        return sorted(common - strictly_above)

    def lcad(self, true: str, pred: str) -> int | None:
        """Lowest-common-ancestor distance: min over the minimal common ancestors of the directed distance
        down to ``true`` (a deterministic rule where networkx's LCA depends on hashing). None if the two
        terms share no ancestor."""
        up = self.distances_up(true)
        mcas = self.minimal_common_ancestors(true, pred)
        return min(up[m] for m in mcas) if mcas else None

    def resolve(self, term_id: str) -> str | None:
        """A deprecated id -> its ``replaced_by`` (if that is a node); a node -> itself; else None."""
        if term_id in self:
            return term_id
        term = self.terms.get(term_id)
        if term is not None and term.deprecated and term.replaced_by and term.replaced_by in self:
            return term.replaced_by
        return None

    def to_obo(self) -> str:
        """OBO text (names, synonyms, is_a to the direct parents, obsolete flags) for pronto."""
        lines = ["format-version: 1.2", f"data-version: {self.version}", "ontology: cl", ""]
        for tid in sorted(self.terms):
            t = self.terms[tid]
            lines += ["[Term]", f"id: {tid}"]
            if t.label.strip():  # `name:` with nothing after it is an OBO syntax error
                lines.append(f"name: {_obo_escape(t.label)}")
            lines += [f'synonym: "{_obo_escape(s)}" EXACT []' for s in t.synonyms if s.strip()]
            lines += [f"is_a: {p}" for p in self.parents.get(tid, ())]
            if t.deprecated:
                lines.append("is_obsolete: true")
                if t.replaced_by:
                    lines.append(f"replaced_by: {t.replaced_by}")
            lines.append("")
        return "\n".join(lines)

    @cached_property
    def pronto(self) -> "pronto.Ontology":
        """A pronto Ontology of this CL (term names and synonyms), via the generated OBO."""
        import io

        import pronto

        return pronto.Ontology(io.BytesIO(self.to_obo().encode()))


def _obo_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ").replace("{", "\\{")
