import numpy as np
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


PLUGIN = '''
import numpy as np
from scfm_bench.adapters import Adapter
from scfm_bench.registry import ADAPTERS

@ADAPTERS.register("my_model")
class MyModel(Adapter):
    key = "my_model"
    display_name = "My model"
    version = "1"
    def embed_batch(self, adata) -> np.ndarray:
        return np.asarray(adata.obsm["X_pca"][:, :10])
'''


def _install_plugin(root, name, source, entry):
    (root / name).mkdir()
    (root / name / "__init__.py").write_text(source)
    info = root / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[scfm_bench.adapters]\n{entry} = {name}\n")


def test_entry_point_plugin_from_the_readme_runs_end_to_end(tmp_path):
    """The README's minimal plug-in, installed as a distribution with an entry point, is listed and scored;
    a broken plug-in is reported and does not take the built-in models down."""
    import os
    import subprocess
    import sys

    site = tmp_path / "site"
    site.mkdir()
    _install_plugin(site, "my_plugin", PLUGIN, "my_model")
    _install_plugin(site, "broken_plugin", "raise ImportError('needs libfoo')", "broken")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "SCFM_BENCH_CACHE_DIR": str(tmp_path / "cache")}
    listed = subprocess.run([sys.executable, "-m", "scfm_bench", "list", "models"], env=env, capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert "my_model" in listed.stdout and "hvg" in listed.stdout
    assert "broken" in listed.stderr and "needs libfoo" in listed.stderr
    out = tmp_path / "emb.npy"
    emb = subprocess.run([sys.executable, "-m", "scfm_bench", "embed", "--model", "my_model", "--dataset", "synthetic",
                          "--out", str(out), "--quiet"], env=env, capture_output=True, text=True)
    assert emb.returncode == 0, emb.stderr[-2000:]
    assert np.load(out).shape[1] == 10
