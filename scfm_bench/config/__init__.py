"""Pydantic schemas for the three YAML kinds and the suite loader."""

from scfm_bench.config.schemas import (
    AggregateSpec,
    Catalogue,
    DatasetEntry,
    FieldMap,
    MetricEntry,
    MetricSuite,
    TaskConfig,
)
from scfm_bench.config.suite import Suite, load_suite, packaged_suite_dir, resolve_suite_dir

__all__ = [
    "AggregateSpec",
    "Catalogue",
    "DatasetEntry",
    "FieldMap",
    "MetricEntry",
    "MetricSuite",
    "Suite",
    "TaskConfig",
    "load_suite",
    "packaged_suite_dir",
    "resolve_suite_dir",
]
