"""Cell Ontology: loading (shipped with cellxgene-ontology-guide, or a user OBO/JSON file), graph
queries, label mapping and the RWR/DCA node vectors of scGraph-OntoRWR. Helper package, not a registry."""

from scfm_bench.ontology.core import CellOntology, Term
from scfm_bench.ontology.load import load_ontology, shipped_cl_file
from scfm_bench.ontology.mapping import Mapping, map_to_ontology
from scfm_bench.ontology.rwr import configure_cache, node_vectors

__all__ = ["CellOntology", "Mapping", "Term", "configure_cache", "load_ontology", "map_to_ontology", "node_vectors",
           "shipped_cl_file"]
