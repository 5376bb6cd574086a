import pytest

from scfm_bench.exceptions import DuplicateKeyError, UnknownKeyError
from scfm_bench.registry import ADAPTERS, METRICS, TASKS, Registry


def test_duplicate_key_raises():
    reg = Registry("thing", "scfm_bench.tasks")
    reg.add("a", object())
    with pytest.raises(DuplicateKeyError, match="registered twice"):
        reg.add("a", object())


def test_unknown_key_suggests():
    with pytest.raises(UnknownKeyError, match="Did you mean 'harmony'"):
        ADAPTERS.get("harmoni")


def test_keys_are_snake_case():
    reg = Registry("thing", "scfm_bench.tasks")
    with pytest.raises(DuplicateKeyError, match="snake_case"):
        reg.add("Bad-Key", object())


def test_builtins_registered():
    assert {"hvg", "pca", "harmony", "scvi", "random", "shuffled", "precomputed"} <= set(ADAPTERS.keys())
    assert {"zero_shot_clustering", "batch_integration"} <= set(TASKS.keys())
    assert {"isolated_labels", "bras", "kbet", "silhouette_batch", "pcr_comparison"} <= set(METRICS.keys())


@pytest.mark.parametrize("registry", [ADAPTERS, TASKS, METRICS])
def test_every_module_registers_something(registry):
    """One file per item: a public module of the package that registers nothing is a mistake."""
    import importlib
    import pkgutil

    pkg = importlib.import_module(registry._package)
    origins = {registry.origin(k) for k in registry.keys()}
    for mod in pkgutil.iter_modules(pkg.__path__):
        if not mod.name.startswith("_"):
            assert f"{registry._package}.{mod.name}" in origins, f"{mod.name} registers no {registry.kind}"
