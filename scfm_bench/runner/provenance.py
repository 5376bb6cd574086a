"""Provenance for run manifests: git commit, machine, GPU and key package versions."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

KEY_PACKAGES = ("scfm-bench", "numpy", "scipy", "pandas", "anndata", "scanpy", "scikit-learn", "scib-metrics",
                "scvi-tools", "harmonypy", "torch", "jax", "pynndescent", "faiss-cpu", "igraph", "pydantic")


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in KEY_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> str | None:
    """The commit of the scfm-bench source tree, when it runs from a git checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def machine_info(device: str) -> dict[str, object]:
    import os

    info: dict[str, object] = {"python": sys.version.split()[0], "platform": platform.platform(),
                               "processor": platform.machine(), "cpus": os.cpu_count(), "device": device}
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info
