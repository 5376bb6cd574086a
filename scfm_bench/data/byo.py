"""Bring your own data: a catalogue entry for an .h5ad file given on the command line."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Literal

from scfm_bench.config.schemas import DatasetEntry, FieldMap
from scfm_bench.data.read import read_names

logger = logging.getLogger(__name__)

CELLXGENE_ONTOLOGY_KEY = "cell_type_ontology_term_id"  # CELLxGENE schema: every cell's Cell Ontology id
_ENSEMBL = re.compile(r"ENS[A-Z]*G\d{11}(\.\d+)?")  # ENSG (human), ENSMUSG (mouse)...; optional version


def entry_from_h5ad(
    path: Path,
    *,
    label_key: str | None = None,
    batch_key: str | None = None,
    ontology_key: str | None = None,
    counts_layer: str = "X",
    gene_id_namespace: Literal["symbol", "ensembl"] | None = None,
) -> tuple[str, DatasetEntry]:
    """Name (the file stem, snake_cased) and a ``file`` entry for ``path``.

    Without ``gene_id_namespace`` it is guessed from the gene names: ensembl when nearly all look like
    Ensembl ids, else symbol. Without ``ontology_key`` the CELLxGENE column ``cell_type_ontology_term_id``
    is used when the file has it. The content is validated by load_dataset, not here.
    """
    path = Path(path).expanduser().resolve()
    name = snake_case(path.stem)
    genes, obs_columns = read_names(path, name=name, counts_layer=counts_layer, fix="check the path of the file you passed")
    if gene_id_namespace is None:
        gene_id_namespace = guess_gene_id_namespace(genes)
        logger.info("dataset %r: gene ids look like %s", name, gene_id_namespace)
    if ontology_key is None and CELLXGENE_ONTOLOGY_KEY in obs_columns:
        ontology_key = CELLXGENE_ONTOLOGY_KEY
        logger.info("dataset %r: Cell Ontology ids from obs[%r], the CELLxGENE standard column (--ontology-key overrides)",
                    name, ontology_key)
    fields = FieldMap(
        label=label_key,
        batch=batch_key,
        ontology_id=ontology_key,
        counts_layer=counts_layer,
        gene_id_namespace=gene_id_namespace,
    )
    return name, DatasetEntry(source="file", path=str(path), description=f"User-supplied file {path.name}", fields=fields)


def snake_case(text: str) -> str:
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text)  # camelCase -> camel_Case
    return re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower() or "dataset"


def guess_gene_id_namespace(genes: list[str]) -> Literal["symbol", "ensembl"]:
    if not genes:
        return "symbol"
    ensembl = sum(bool(_ENSEMBL.fullmatch(g)) for g in genes)
    return "ensembl" if ensembl >= 0.9 * len(genes) else "symbol"
