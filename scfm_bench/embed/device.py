"""Device resolution. ``auto`` takes every CUDA GPU torch sees (sharded data-parallel when there are
several, which under Slurm are the GPUs the job was given), else the CPU. A comma list such as
``cuda:0,cuda:1`` names the shards explicitly. Torch is imported only if needed."""

from __future__ import annotations

import importlib.util

from scfm_bench.exceptions import ConfigError


def resolve_device(device: str) -> str:
    """The normalised device string: ``cpu``, ``cuda:N``, or a comma list of them (one shard each)."""
    parts = [p.strip() for p in device.split(",")]
    if len(parts) > 1:
        resolved = [resolve_device(p) for p in parts]
        if "auto" in parts or any("," in r for r in resolved):
            raise ConfigError(f"--device {device}: 'auto' cannot be part of a device list.")
        gpus = [r for r in resolved if r != "cpu"]
        if len(set(gpus)) != len(gpus):
            raise ConfigError(f"--device {device}: a GPU is listed twice.")
        return ",".join(resolved)
    if device == "cpu":
        return "cpu"
    if importlib.util.find_spec("torch") is None:
        if device == "auto":
            return "cpu"
        raise ConfigError(f"--device {device} needs PyTorch with CUDA; torch is not installed.")
    import torch

    if device == "auto":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return ",".join(f"cuda:{i}" for i in range(n)) or "cpu"
    if not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: no CUDA device is visible to torch. Use --device cpu or auto.")
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        raise ConfigError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) visible.")
    return f"cuda:{index}"


def primary_device(device: str) -> str:
    """The first shard's device: where single-device work (whole-dataset baselines, gene tables) runs."""
    return device.split(",")[0]
