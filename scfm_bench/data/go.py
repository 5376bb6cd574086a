"""Gene Ontology gene sets for the gene_function task: read a GO release (the offline
``go_human_2022`` snapshot, or the consortium's ``go-basic.obo`` + ``goa_human.gaf.gz``), propagate
annotations up the graph (true-path rule over ``is_a`` and ``part_of``), filter by evidence and term
size, prune near-duplicate terms, and write/read the small default shipped in the package.

GO data: Gene Ontology Consortium, CC BY 4.0 (Ashburner et al. 2000, Nat Genet 25:25-29; Gene Ontology
Consortium 2023, Genetics 224:iyad031).
"""

from __future__ import annotations

import gzip
import io
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from scfm_bench.exceptions import DataError

log = logging.getLogger(__name__)

ASPECTS = ("BP", "MF", "CC")
PROPAGATE_OVER = ("isa", "part of")
DEFAULT_FILE = Path(__file__).with_name("go_default.tsv.gz")
_OBO_ASPECT = {"biological_process": "BP", "molecular_function": "MF", "cellular_component": "CC"}
_GAF_ASPECT = {"P": "BP", "F": "MF", "C": "CC"}
CATALOGUE_ENTRIES = ("go_basic", "goa_human")  # datasets.yaml entries of the current release (params.go: current)


@dataclass(frozen=True)
class GoRelease:
    """A GO release as read from disk, before any derivation."""

    terms: pd.DataFrame  # go_id, aspect, name
    parents: pd.DataFrame  # go_id, parent_id, relationship (isa, part of, regulates, ...)
    annotations: pd.DataFrame  # symbol, go_id, evidence (direct annotations, NOT-qualified ones removed)
    genes: pd.DataFrame  # symbol, ensembl_ids (';'-joined, may be empty), gene_type
    source: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GeneSets:
    """Propagated, filtered GO terms: each term's gene symbols, plus each gene's Ensembl ids."""

    terms: pd.DataFrame  # index go_id; aspect, name, n_genes
    members: dict[str, frozenset[str]]  # go_id -> gene symbols
    ensembl: dict[str, tuple[str, ...]]  # symbol -> Ensembl ids (genes in any term)
    params: dict[str, Any]  # the derivation (evidence excluded, sizes, pruning, release)

    def aspect(self, aspect: str) -> list[str]:
        return self.terms.index[self.terms.aspect == aspect].tolist()


# ---- reading releases -----------------------------------------------------------------------------

def read_snapshot(folder: Path) -> GoRelease:
    """The ``go_human_2022`` export (org.Hs.eg.db / GO.db tables, see the data README)."""
    folder = Path(folder)
    need = ["genes.tsv.gz", "gene_go.tsv.gz", "go_terms.tsv.gz", "go_parents.tsv.gz"]
    missing = [f for f in need if not (folder / f).is_file()]
    if missing:
        raise DataError(f"GO snapshot {folder} lacks {', '.join(missing)}. Fix: point at the go_human_2022 folder.")
    read = lambda f: pd.read_csv(folder / f, sep="\t", dtype=str, keep_default_na=False)  # noqa: E731
    genes, ann = read("genes.tsv.gz"), read("gene_go.tsv.gz")
    symbol = dict(zip(genes.entrez_id, genes.symbol))
    ann = pd.DataFrame({"symbol": ann.entrez_id.map(symbol), "go_id": ann.go_id, "evidence": ann.evidence}).dropna()
    return GoRelease(read("go_terms.tsv.gz")[["go_id", "aspect", "name"]], read("go_parents.tsv.gz"), ann,
                     genes[["symbol", "ensembl_ids", "gene_type"]], {"source": "go_human_2022 snapshot (GO 2022-07-01, "
                                                                      "org.Hs.eg.db 3.16 annotations 2022-09-12)"})


def read_obo(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Terms and is_a/relationship edges of an OBO file (obsolete terms dropped), and its data-version."""
    terms, edges, version, cur = [], [], "", None
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line.startswith("["):
                cur = {"edges": []} if line == "[Term]" else None
                if cur is not None:
                    terms.append(cur)
            elif cur is None:
                if line.startswith("data-version:"):
                    version = line.split(":", 1)[1].strip()
            elif ":" in line:
                tag, value = (s.strip() for s in line.split(":", 1))
                value = value.split(" ! ")[0].strip()
                if tag in ("id", "name", "namespace"):
                    cur[tag] = value
                elif tag == "is_obsolete" and value == "true":
                    cur["obsolete"] = True
                elif tag == "is_a":
                    cur["edges"].append((value.split()[0], "isa"))
                elif tag == "relationship":
                    rel, target = value.split()[:2]
                    cur["edges"].append((target, rel.replace("_", " ")))
    terms = [t for t in terms if not t.get("obsolete") and t.get("namespace") in _OBO_ASPECT]
    if not terms:
        raise DataError(f"{path}: no GO terms found. Fix: give the consortium's go-basic.obo.")
    frame = pd.DataFrame({"go_id": [t["id"] for t in terms], "aspect": [_OBO_ASPECT[t["namespace"]] for t in terms],
                          "name": [t.get("name", "") for t in terms]})
    edges = pd.DataFrame([(t["id"], p, r) for t in terms for p, r in t["edges"]], columns=["go_id", "parent_id", "relationship"])
    return frame, edges, version


def read_gaf(path: Path) -> pd.DataFrame:
    """symbol, go_id, evidence, object_type of a GAF 2.x file; NOT-qualified annotations are dropped."""
    with gzip.open(path, "rt", encoding="utf-8") if str(path).endswith(".gz") else open(path, encoding="utf-8") as fh:
        text = "".join(line for line in fh if not line.startswith("!"))
    gaf = pd.read_csv(io.StringIO(text), sep="\t", header=None, dtype=str, keep_default_na=False, quoting=3)
    if gaf.shape[1] < 12:
        raise DataError(f"{path}: {gaf.shape[1]} columns, a GAF file has at least 15. Fix: give goa_human.gaf(.gz).")
    keep = ~gaf[3].str.contains("NOT")
    return pd.DataFrame({"symbol": gaf[2], "go_id": gaf[4], "evidence": gaf[6], "object_type": gaf[11]})[keep]


def read_release(obo: Path, gaf: Path) -> GoRelease:
    """go-basic.obo + a GAF: GAF objects of type protein stand for protein-coding genes (no Ensembl ids)."""
    terms, parents, version = read_obo(obo)
    ann = read_gaf(gaf)
    genes = (ann.drop_duplicates("symbol").assign(ensembl_ids="", gene_type=lambda d: d.object_type.map(
        lambda t: "protein-coding" if t == "protein" else t))[["symbol", "ensembl_ids", "gene_type"]])
    return GoRelease(terms, parents, ann[["symbol", "go_id", "evidence"]], genes,
                     {"source": f"{Path(obo).name} ({version or 'no data-version'}) + {Path(gaf).name}"})


def fetch_current() -> GoRelease:
    """The current release through the catalogue entries ``go_basic`` and ``goa_human`` (datasets.yaml):
    downloaded once into the data directory, sha256 recorded on first fetch and verified on every use."""
    from scfm_bench.config import load_suite
    from scfm_bench.data.fetch import fetch_dataset
    from scfm_bench.settings import Settings

    settings, catalogue = Settings(), load_suite(None).catalogue.datasets
    missing = [n for n in CATALOGUE_ENTRIES if n not in catalogue]
    if missing:
        raise DataError(f"GO source 'current' needs the datasets.yaml entries {missing}. Fix: copy them from the packaged suite.")
    obo, gaf = (fetch_dataset(n, catalogue[n], settings) for n in CATALOGUE_ENTRIES)
    return read_release(obo, gaf)


# ---- derivation ---------------------------------------------------------------------------------

def ancestors(parents: pd.DataFrame, relations: Iterable[str] = PROPAGATE_OVER) -> dict[str, frozenset[str]]:
    """Every term's ancestors (itself included) over the given relationships."""
    up: dict[str, list[str]] = {}
    for child, parent in parents.loc[parents.relationship.isin(list(relations)), ["go_id", "parent_id"]].itertuples(index=False):
        up.setdefault(child, []).append(parent)
    memo: dict[str, frozenset[str]] = {}

    def visit(term: str) -> frozenset[str]:
        if term not in memo:
            stack, seen = [term], {term}
            while stack:  # iterative: GO is deep enough to make recursion fragile
                for p in up.get(stack.pop(), ()):
                    if p not in seen:
                        seen.add(p)
                        stack.append(p)
            memo[term] = frozenset(seen)
        return memo[term]

    for t in set(up):
        visit(t)
    return memo


def derive(release: GoRelease, *, exclude_evidence: Iterable[str] = ("IEA", "ND"), gene_type: str | None = "protein-coding",
           min_genes: int = 20, max_genes: int = 500, prune_identity: float = 0.9, max_terms_per_aspect: int | None = None,
           seed: int = 0) -> GeneSets:
    """Gene sets per GO term: annotations without the excluded evidence codes, restricted to genes of
    ``gene_type``, propagated to every ancestor over is_a and part_of (true-path rule), terms with
    ``min_genes``..``max_genes`` genes kept; then, from the smallest term up, a term is dropped when a kept
    descendant covers >= ``prune_identity`` of its genes (Jaccard of a subset = size ratio). With
    ``max_terms_per_aspect`` a seeded sample of the survivors is kept (the small packaged default)."""
    import numpy as np

    excluded = sorted(set(exclude_evidence))
    ann = release.annotations[~release.annotations.evidence.isin(excluded)]
    genes = release.genes
    if gene_type is not None:
        genes = genes[genes.gene_type == gene_type]
    ann = ann[ann.symbol.isin(set(genes.symbol))]
    up = ancestors(release.parents)
    members: dict[str, set[str]] = {}
    for symbol, go_id in ann[["symbol", "go_id"]].drop_duplicates().itertuples(index=False):
        for t in up.get(go_id, (go_id,)):
            members.setdefault(t, set()).add(symbol)
    terms = release.terms.drop_duplicates("go_id").set_index("go_id")
    sized = {t: g for t, g in members.items() if min_genes <= len(g) <= max_genes and t in terms.index
             and terms.at[t, "aspect"] in ASPECTS}
    kept: list[str] = []
    below: dict[str, set[str]] = {}  # kept term -> its kept ancestors' index, inverted below
    for t in sorted(sized, key=lambda t: (len(sized[t]), -len(up.get(t, ())), t)):  # children before parents
        redundant = any(len(sized[d]) >= prune_identity * len(sized[t]) for d in below.get(t, ()))
        if not redundant:
            kept.append(t)
            for a in up.get(t, ()):
                if a != t:
                    below.setdefault(a, set()).add(t)
    frame = terms.loc[kept, ["aspect", "name"]].assign(n_genes=[len(sized[t]) for t in kept])
    if max_terms_per_aspect is not None:
        rng = np.random.default_rng(seed)
        pick = [t for a in ASPECTS for t in sorted(rng.permutation(sorted(frame.index[frame.aspect == a]))[:max_terms_per_aspect])]
        frame = frame.loc[pick]
    frame = frame.sort_values(["aspect", "n_genes", "name"]).rename_axis("go_id")
    used = set().union(*(sized[t] for t in frame.index)) if len(frame) else set()
    ens = {s: tuple(e for e in str(ids).split(";") if e) for s, ids in genes[["symbol", "ensembl_ids"]].itertuples(index=False)
           if s in used}
    params = {**release.source, "exclude_evidence": excluded, "gene_type": gene_type, "propagated_over": list(PROPAGATE_OVER),
              "min_genes": min_genes, "max_genes": max_genes, "prune_identity": prune_identity,
              "max_terms_per_aspect": max_terms_per_aspect, "seed": seed, "licence": "CC BY 4.0 (Gene Ontology Consortium)"}
    log.info("GO gene sets: %d terms (%s) over %d genes", len(frame), frame.aspect.value_counts().to_dict(), len(used))
    return GeneSets(frame, {t: frozenset(sized[t]) for t in frame.index}, ens, params)


# ---- the packaged file ----------------------------------------------------------------------------

def write_gene_sets(sets: GeneSets, path: Path) -> None:
    """One row per term (genes ';'-joined) and one row per gene (its Ensembl ids), the derivation as
    ``#`` header lines; gzip without a timestamp so the file is byte-reproducible."""
    import json

    lines = [f"# {k}: {json.dumps(v)}" for k, v in sets.params.items()]
    lines.append("kind\tid\taspect\tname\tvalues")
    lines += [f"term\t{t}\t{r.aspect}\t{r['name']}\t{';'.join(sorted(sets.members[t]))}" for t, r in sets.terms.iterrows()]
    lines += [f"gene\t{s}\t\t\t{';'.join(e)}" for s, e in sorted(sets.ensembl.items())]
    with open(path, "wb") as fh, gzip.GzipFile(fileobj=fh, mode="wb", mtime=0, filename="") as gz:
        gz.write(("\n".join(lines) + "\n").encode())


def read_gene_sets(path: Path = DEFAULT_FILE) -> GeneSets:
    import json

    params, rows = {}, []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("# "):
                k, v = line[2:].split(": ", 1)
                params[k] = json.loads(v)
            elif not line.startswith("kind\t"):
                rows.append(line.rstrip("\n").split("\t"))
    terms = [r for r in rows if r[0] == "term"]
    frame = pd.DataFrame({"go_id": [r[1] for r in terms], "aspect": [r[2] for r in terms], "name": [r[3] for r in terms],
                          "n_genes": [len(r[4].split(";")) for r in terms]}).set_index("go_id")
    return GeneSets(frame, {r[1]: frozenset(r[4].split(";")) for r in terms},
                    {r[1]: tuple(e for e in r[4].split(";") if e) for r in rows if r[0] == "gene"}, params)


def load_gene_sets(source: str, **derivation) -> GeneSets:
    """``default`` (the packaged file), ``current`` (fetched, then derived with ``derivation``), or a
    folder holding either the go_human_2022 snapshot tables or go-basic.obo + goa_human.gaf(.gz)."""
    if source == "default":
        return read_gene_sets(DEFAULT_FILE)
    if source == "current":
        return derive(fetch_current(), **derivation)
    folder = Path(source).expanduser()
    if (folder / "gene_go.tsv.gz").is_file():
        return derive(read_snapshot(folder), **derivation)
    gaf = next((folder / f for f in ("goa_human.gaf.gz", "goa_human.gaf") if (folder / f).is_file()), None)
    if (folder / "go-basic.obo").is_file() and gaf is not None:
        return derive(read_release(folder / "go-basic.obo", gaf), **derivation)
    raise DataError(f"GO source {source!r}: not 'default', 'current', or a folder with the go_human_2022 tables or "
                    f"go-basic.obo + goa_human.gaf.gz. Fix: set params.go accordingly.")


# the packaged default: the snapshot, default derivation, a seeded sample of terms per aspect
DEFAULT_DERIVATION = {"max_terms_per_aspect": 200, "seed": 0}

if __name__ == "__main__":  # python -m scfm_bench.data.go <go_human_2022 folder>: rebuild go_default.tsv.gz
    import sys

    logging.basicConfig(level=logging.INFO)
    write_gene_sets(derive(read_snapshot(Path(sys.argv[1])), **DEFAULT_DERIVATION), DEFAULT_FILE)
