"""Run-wide settings from ``SCFM_BENCH_*`` environment variables (pydantic-settings).

Precedence: code defaults < suite YAML < environment < CLI flags. The CLI builds a Settings once
and passes it down; library code never reads the environment itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "scfm-bench"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SCFM_BENCH_", extra="forbid", validate_assignment=True)

    cache_dir: Path = Field(default_factory=_default_cache_dir, description="Downloads, built datasets and embeddings.")
    data_dir: Path | None = Field(None, description="Where fetched datasets live (default: <cache_dir>/data).")
    model_dir: Path | None = Field(None, description="Folder holding one sub-folder of checkpoints per model.")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N | a comma list of them (data-parallel shards)")
    batch_size: int = Field(64, ge=1, description="Cells per forward batch for models that batch.")
    seed: int | None = Field(None, ge=0, description="Overrides the seeds of every task when set.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    executor: Literal["local", "local-pool", "slurm"] = Field(
        "local", description="Where cells run: this process, a pool of local processes, or Slurm jobs (submitit).")

    @field_validator("device")
    @classmethod
    def _check_device(cls, v: str) -> str:
        def ok(d: str) -> bool:
            return d in ("cpu", "cuda") or (d.startswith("cuda:") and d[5:].isdigit())

        if v == "auto" or all(ok(d.strip()) for d in v.split(",")):
            return v
        raise ValueError(f"device must be auto, cpu, cuda, cuda:N or a comma list such as cuda:0,cuda:1, not {v!r}")

    @property
    def datasets_dir(self) -> Path:
        return self.data_dir or self.cache_dir / "data"

    @property
    def embeddings_dir(self) -> Path:
        return self.cache_dir / "embeddings"
