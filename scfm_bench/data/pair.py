"""Reference/query pair entries: two catalogue datasets loaded as one AnnData on their shared genes.

The embedding is then computed once over both sides (as a user embeds a query together with, or
into the space of, a reference) and the annotation task's ``ref_query`` protocol trains on the
reference rows. obs holds the pair's own field columns (label, batch, Cell Ontology id, filled from
each member's field map), ``scfm_role`` (reference/query) and ``scfm_source`` (member name); the
batch is ``<member>:<batch>`` so batch-aware models see both datasets' batches.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from scfm_bench.config.schemas import DatasetEntry
from scfm_bench.exceptions import ConfigError, DataError
from scfm_bench.settings import Settings

if TYPE_CHECKING:
    from anndata import AnnData

logger = logging.getLogger(__name__)

ROLE_KEY = "scfm_role"


def load_pair(name: str, entry: DatasetEntry, settings: Settings, *, suite_root: Path) -> tuple["AnnData", str]:
    """The concatenated counts AnnData and a sha256 over both members' hashes."""
    import anndata as ad
    import numpy as np
    import pandas as pd

    from scfm_bench.config import load_suite
    from scfm_bench.data.load import load_dataset

    catalogue = load_suite(suite_root).catalogue.datasets
    fields = entry.fields
    parts, shas = [], []
    for role, member in (("reference", entry.reference), ("query", entry.query)):
        m_entry = catalogue[member]
        if m_entry.fields.gene_id_namespace != fields.gene_id_namespace:
            raise ConfigError(f"pair {name!r}: {member!r} uses {m_entry.fields.gene_id_namespace} gene ids, the pair "
                              f"{fields.gene_id_namespace}. Fix: set the pair's fields.gene_id_namespace to match both members.")
        ds = load_dataset(member, m_entry, settings, suite_root=suite_root)
        a, mf = ds.adata, m_entry.fields
        obs = {ROLE_KEY: role, "scfm_source": member}
        for key in ("label", "ontology_id"):
            if getattr(fields, key) is None:
                continue
            if getattr(mf, key) is None:
                raise ConfigError(f"pair {name!r} declares fields.{key}, but its {role} {member!r} has none. "
                                  f"Fix: add fields.{key} to {member!r} or remove it from the pair.")
            obs[getattr(fields, key)] = a.obs[getattr(mf, key)].astype(str).to_numpy()
        if fields.batch is not None:
            obs[fields.batch] = (member + ":" + a.obs[mf.batch].astype(str)).to_numpy() if mf.batch else member
        parts.append(ad.AnnData(X=a.X, obs=pd.DataFrame(obs, index=member + ":" + a.obs_names.astype(str)),
                                var=pd.DataFrame(index=a.var_names)))
        shas.append(ds.sha256)
    genes = parts[0].var_names.intersection(parts[1].var_names, sort=False)
    if len(genes) == 0:
        raise DataError(f"pair {name!r}: {entry.reference!r} and {entry.query!r} share no gene ids. Fix: pair datasets "
                        "with the same gene-id namespace.")
    logger.info("pair %r: %d reference + %d query cells on %d shared genes", name, parts[0].n_obs, parts[1].n_obs, len(genes))
    out = ad.concat([p[:, genes] for p in parts], join="inner", merge=None)
    out.X = out.X.astype(np.float32)
    out.uns["pair"] = {"reference": entry.reference, "query": entry.query, "n_shared_genes": int(len(genes))}
    return out, hashlib.sha256(":".join(shas).encode()).hexdigest()
