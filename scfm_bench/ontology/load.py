"""Load the Cell Ontology: the newest CL that cellxgene-ontology-guide ships (offline), or a user file.

A user file is either OBO (read with pronto; is_a and part_of parents) or JSON in
cellxgene-ontology-guide's format (``{id: {label, ancestors: {id: distance}, synonyms, deprecated,
replaced_by}}``, optionally zstd-compressed). Only ``CL:`` terms are kept. Loaded ontologies are
cached per process (keyed by the file's sha256).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from scfm_bench.exceptions import DataError, MissingDependencyError
from scfm_bench.ontology.core import CellOntology, Term

PREFIX = "CL:"
_FIX = "Fix: point the metric option ontology at a Cell Ontology OBO or cellxgene-style JSON file, or remove it to use the shipped CL."
_SHIPPED = re.compile(r"CL-ontology-(v[\d-]+)\.json\.zst$")


def shipped_cl_file() -> Path:
    """The newest CL file inside the installed cellxgene-ontology-guide."""
    try:
        import cellxgene_ontology_guide
    except ImportError:
        raise MissingDependencyError(
            "The Cell Ontology metrics need cellxgene-ontology-guide (it ships CL offline): pip install cellxgene-ontology-guide"
        ) from None
    data = Path(cellxgene_ontology_guide.__file__).parent / "data"
    files = sorted((f for f in data.glob("CL-ontology-v*.json.zst")), key=lambda f: _SHIPPED.search(f.name).group(1))
    if not files:
        raise DataError(f"cellxgene-ontology-guide at {data} ships no CL-ontology-v*.json.zst; reinstall it.")
    return files[-1]


def load_ontology(path: str | Path | None = None) -> CellOntology:
    """The shipped CL (``path=None``) or a user OBO/JSON file."""
    path = Path(path) if path is not None else shipped_cl_file()
    if not path.is_file():
        raise DataError(f"Ontology file {path} does not exist. {_FIX}")
    raw = path.read_bytes()
    sha256 = hashlib.sha256(raw).hexdigest()
    if sha256 not in _LOADED:
        _LOADED[sha256] = _parse(str(path), raw, sha256)
    return _LOADED[sha256]


_LOADED: dict[str, CellOntology] = {}


def _parse(name: str, raw: bytes, sha256: str) -> CellOntology:
    """``name``: the file's path, named in errors; records keep its base name."""
    if name.endswith(".zst"):
        import zstandard

        raw = zstandard.ZstdDecompressor().stream_reader(raw).read()
    m = _SHIPPED.search(name)
    if name.endswith((".json", ".json.zst")):
        return _from_json(raw, version=m.group(1) if m else Path(name).name, sha256=sha256, source=name)
    if name.endswith(".obo"):
        return _from_obo(raw, sha256=sha256, source=name)
    raise DataError(f"Ontology file {name}: unknown format; use .obo, .json or .json.zst (cellxgene-ontology-guide format). {_FIX}")


def _from_json(raw: bytes, *, version: str, sha256: str, source: str) -> CellOntology:
    try:
        doc = json.loads(raw)
        terms = {tid: Term(tid, t.get("label") or "", tuple(t.get("synonyms") or ()), bool(t.get("deprecated")),
                           t.get("replaced_by")) for tid, t in doc.items() if tid.startswith(PREFIX)}
        direct = {tid: [a for a, d in (doc[tid].get("ancestors") or {}).items() if d == 1] for tid in terms}
    except (ValueError, AttributeError, TypeError) as e:
        raise DataError(f"Ontology file {source}: not cellxgene-ontology-guide JSON ({e}). {_FIX}") from None
    return _build(terms, direct, version, sha256, source)


def _from_obo(raw: bytes, *, sha256: str, source: str) -> CellOntology:
    import io

    try:
        import pronto
    except ImportError:
        raise MissingDependencyError("Reading an OBO ontology needs pronto: pip install pronto") from None
    import warnings

    try:
        with warnings.catch_warnings():  # pronto guesses encodings of garbage loudly; the error below says it all
            warnings.simplefilter("ignore")
            onto = pronto.Ontology(io.BytesIO(raw))
    except Exception as e:  # pronto raises SyntaxError, ValueError, ... for files it cannot read
        raise DataError(f"Ontology file {source}: not a readable OBO file ({type(e).__name__}: {e}). {_FIX}") from None
    terms, direct = {}, {}
    for t in onto.terms():
        if not t.id.startswith(PREFIX):
            continue
        replaced = sorted(r.id for r in t.replaced_by)
        terms[t.id] = Term(t.id, t.name or "", tuple(sorted(s.description for s in t.synonyms)), bool(t.obsolete),
                           replaced[0] if replaced else None)
        parents = {p.id for p in t.superclasses(distance=1, with_self=False)}
        for rel, targets in t.relationships.items():
            if rel.id in ("part_of", "BFO:0000050"):
                parents |= {p.id for p in targets}
        direct[t.id] = sorted(parents)
    version = onto.metadata.data_version or Path(source).name
    return _build(terms, direct, version, sha256, source)


def _build(terms: dict[str, Term], direct: dict[str, list[str]], version, sha256, source) -> CellOntology:
    """Keep edges whose both ends are non-deprecated CL terms (spec §3.4b); a pair listed twice counts once."""
    live = {t for t, term in terms.items() if not term.deprecated}
    parents = {t: tuple(sorted({p for p in direct.get(t, ()) if p in live})) for t in sorted(live)}
    if not terms:
        raise DataError(f"Ontology file {source}: no {PREFIX} terms (the Cell Ontology's ids start with {PREFIX}). {_FIX}")
    if not any(parents.values()):
        raise DataError(f"Ontology file {source}: no parent relations between CL terms were found. {_FIX}")
    return CellOntology(terms, parents, version, sha256, Path(source).name)
