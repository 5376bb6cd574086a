"""``scfm-bench info``: versions, devices, cache and data folders."""

from __future__ import annotations

import typer

from scfm_bench.cli._common import Format, FormatOpt, OutOpt, emit, settings


def register(app: typer.Typer) -> None:
    app.command("info")(info)


def info(format: FormatOpt = Format.table, out: OutOpt = None) -> int:
    """Show scfm-bench and key package versions, compute devices, and the cache/data folders."""
    from scfm_bench import __version__
    from scfm_bench.embed import resolve_device
    from scfm_bench.runner.provenance import machine_info, package_versions

    cfg = settings()
    data = {
        "scfm_bench": __version__,
        "cache_dir": str(cfg.cache_dir), "data_dir": str(cfg.datasets_dir), "embeddings_dir": str(cfg.embeddings_dir),
        "model_dir": str(cfg.model_dir) if cfg.model_dir else None,
        "device_setting": cfg.device, "device_resolved": resolve_device("auto" if cfg.device == "auto" else cfg.device),
        "machine": machine_info(cfg.device), "packages": package_versions(),
    }
    from rich.table import Table

    table = Table(title=f"scfm-bench {__version__}", show_header=False)
    for k, v in data.items():
        if isinstance(v, dict):
            v = ", ".join(f"{a}={b}" for a, b in v.items())
        table.add_row(k, str(v))
    emit(data, format, out, table)
    return 0
