"""Real h5ad files from the shared folder beside the repository, loaded as users bring their own files.

The folder is never part of the project; these tests skip when it is absent (fail under CI=true: see
the `shared_data` fixture). Every file listed in EXPECTED is required there; any other h5ad found is tried too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scfm_bench.data import entry_from_h5ad, load_dataset, validate_fields
from scfm_bench.exceptions import DataError


ONTOLOGY = "cell_type_ontology_term_id"
# stem -> (gene id namespace, batch column, ontology column, whether X holds integer counts)
EXPECTED = {
    "ifnb_pbmc_2k": ("symbol", "batch", ONTOLOGY, True),
    "pbmc_3chem_1k2": ("symbol", "batch", ONTOLOGY, True),
    "lung_celllines_mixology_1k": ("ensembl", "batch", ONTOLOGY, True),
    "kang_ctrl_8donors_12k": ("symbol", "batch", ONTOLOGY, True),
    "pancreas_5tech_500": ("symbol", "batch", ONTOLOGY, False),  # CEL-seq/Fluidigm values deposited non-integer
    "perturbench_devel": ("symbol", None, None, False),  # log1p values, no batches
}
STEMS = sorted(set(EXPECTED) | {p.stem for p in (Path(__file__).resolve().parents[3] / "shared" / "data").glob("*.h5ad")})


@pytest.mark.parametrize("stem", STEMS)
def test_real_file_loads_or_is_refused_clearly(stem, shared_data, settings):
    path = shared_data / f"{stem}.h5ad"
    assert path.is_file(), f"{path} is missing from the real-data folder"
    namespace, batch_key, ontology_key, integer = EXPECTED.get(path.stem, (None, "batch", None, None))
    name, entry = entry_from_h5ad(path, label_key="cell_type", batch_key=batch_key, ontology_key=ontology_key)
    assert name == path.stem
    if namespace is not None:
        assert entry.fields.gene_id_namespace == namespace
    if integer is False:
        with pytest.raises(DataError) as err:
            load_dataset(name, entry, settings, suite_root=path.parent)
        msg = str(err.value)
        assert f"{name!r}" in msg and "counts layer 'X'" in msg and "e.g." in msg
        assert "pass the raw-count layer with --counts-layer or set fields.counts_layer" in msg
        return
    ds = load_dataset(name, entry, settings, suite_root=path.parent)
    assert ds.adata.var_names.is_unique and ds.adata.obs_names.is_unique
    assert len(ds.sha256) == 64
    validate_fields(ds, need_label=True, need_batch=batch_key is not None, need_ontology=ontology_key is not None)
