"""Model adapters: one file per model; each registers itself in ADAPTERS.

Third-party adapters register through the ``scfm_bench.adapters`` entry-point group: the entry point
names a module that, when imported, calls ``ADAPTERS.register("key")`` on an Adapter subclass.
"""

from scfm_bench.adapters._base import Adapter, InputSpec, Prepared, whole_dataset

__all__ = ["Adapter", "InputSpec", "Prepared", "whole_dataset"]
