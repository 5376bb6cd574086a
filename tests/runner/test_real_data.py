"""Both tasks on real data from the shared folder (skipped when it is absent)."""

import pytest

from scfm_bench.records import read_records
from scfm_bench.runner import RunOptions, build_plan, execute
from scfm_bench.settings import Settings


@pytest.mark.slow
def test_chemistry_batches_pbmc(shared_data, tmp_path):
    """10x v1/v2/5' PBMCs: a real, strong technical batch effect that Harmony must reduce."""
    opts = RunOptions(datasets=[str(shared_data / "pbmc_3chem_1k2.h5ad")], label_key="cell_type", batch_key="batch",
                      models=["pca", "harmony", "random"], tasks=["batch_integration", "zero_shot_clustering"])
    summary = execute(build_plan(opts), Settings(), output_dir=tmp_path)
    assert summary.exit_code == 0
    v = {(r.model, r.metric): r.value for r in read_records(tmp_path) if r.status == "ok"}
    assert v[("harmony", "batch_correction")] > v[("pca", "batch_correction")] + 0.1
    assert v[("pca", "avg_bio")] > v[("random", "avg_bio")] + 0.2
    assert v[("harmony", "total")] > v[("random", "total")]


@pytest.mark.slow
def test_non_integer_counts_refused_or_rounded(shared_data, tmp_path):
    """pancreas_5tech_500 was deposited with fractional counts: refused by default, rounded on request."""
    from scfm_bench.exceptions import DataError

    path = str(shared_data / "pancreas_5tech_500.h5ad")
    opts = RunOptions(datasets=[path], label_key="cell_type", batch_key="batch", models=["pca"],
                      tasks=["zero_shot_clustering"])
    with pytest.raises(DataError, match="--round-counts"):
        execute(build_plan(opts), Settings(), output_dir=tmp_path)
    opts.round_counts = True
    assert execute(build_plan(opts), Settings(), output_dir=tmp_path).exit_code == 0
