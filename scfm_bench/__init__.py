"""scfm-bench: benchmark single-cell foundation models and baselines on shared tasks and metrics."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("scfm-bench")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
