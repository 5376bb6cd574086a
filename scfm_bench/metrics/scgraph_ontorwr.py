"""scGraph-OntoRWR (Wu et al. 2025, scFM-Bench): do distances between cell-type centroids in the
embedding follow distances between the types in the Cell Ontology?

Ontology side: RWR + DCA node vectors of the whole CL graph (scfm_bench.ontology.rwr), Euclidean
distances between the dataset's types. Embedding side: 20 %-per-side trimmed centroids, distances
normalised by each column's maximum. Score: mean over types of the Pearson correlation of the two
columns, the self entry (0, 0) included as in the reference. Because that self entry dominates on few
types (a random embedding can outscore a sensible one), ``pearson_self_excluded`` repeats it without
the self entry. The reference's ``Rank-OntoRWR`` output compares two columns of the embedding matrix
with each other (a bug) and is not reproduced. Edge weights: uniform (default) or the cosine of
user-supplied term vectors (the reference used LangCell text embeddings, which cannot be regenerated
offline); the record states which.
"""

from __future__ import annotations


from scfm_bench.exceptions import CellSkipped
from scfm_bench.metrics._base import MetricSpec, Scored, metric
from scfm_bench.metrics._celltypes import (centroid_distances, column_correlations, finite_embedding, kept_types,
                                           nanmean_or_fail)
from scfm_bench.metrics._ontology import check_ontology_option, mapped_ids
from scfm_bench.ontology import node_vectors


@metric(MetricSpec("scgraph_ontorwr", "scGraph-OntoRWR", "ontology", True, (-1.0, 1.0), ("X", "ontology_ids"),
                   "Wu et al. 2025, Genome Biol 26:334 (scFM-Bench)", outputs=("pearson", "pearson_self_excluded"),
                   check_options=check_ontology_option))
def scgraph_ontorwr(X, ontology_ids, *, trim: float = 0.2, min_cells: int = 10, weights: str = "uniform",
                    term_vectors: str | None = None, dim: int = 256, ontology=None,
                    max_unmapped: float = 0.5) -> Scored:
    X = finite_embedding(X)
    onto, mapping, info = mapped_ids(ontology_ids, ontology, max_unmapped=max_unmapped)
    X, ids = X[mapping.mask], mapping.ids[mapping.mask]
    types, small = kept_types(ids, min_cells)
    info.update(weights=weights, dca_dim=dim, trim=trim, min_cells=min_cells, types_excluded_small=small,
                n_types_used=len(types))
    if len(types) < 3:
        raise CellSkipped(f"needs at least 3 cell types with >= {min_cells} cells in the ontology; found {len(types)}.")
    nv = node_vectors(onto, weights=weights, term_vectors=term_vectors, dim=dim)
    from scipy.spatial.distance import cdist

    V = nv.vectors[[nv.index[t] for t in types]]
    R = cdist(V, V)
    D = centroid_distances(X, ids, types, trim)
    full = column_correlations(D, R)["corr"]
    excl = column_correlations(D, R, drop_self=True)["corr"]
    info["per_type_pearson"] = {str(t): round(float(v), 6) for t, v in zip(types, full)}
    return Scored({"pearson": nanmean_or_fail(full, "scGraph-OntoRWR"),
                   "pearson_self_excluded": nanmean_or_fail(excl, "scGraph-OntoRWR (self excluded)")}, info)
