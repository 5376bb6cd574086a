"""scfm-bench: benchmark single-cell foundation models and baselines on shared tasks and metrics."""

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    # resolved lazily: importlib.metadata costs ~0.1 s, which `scfm-bench --help` should not pay
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("scfm-bench")
        except PackageNotFoundError:  # running from a source tree without an install
            return "0.0.0+unknown"
    raise AttributeError(name)
