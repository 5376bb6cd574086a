"""Device resolution: auto picks CUDA when torch sees one, else CPU. Torch is imported only if needed."""

from __future__ import annotations

import importlib.util

from scfm_bench.exceptions import ConfigError


def resolve_device(device: str) -> str:
    if device == "cpu":
        return "cpu"
    if importlib.util.find_spec("torch") is None:
        if device == "auto":
            return "cpu"
        raise ConfigError(f"--device {device} needs PyTorch with CUDA; torch is not installed.")
    import torch

    if device == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: no CUDA device is visible to torch. Use --device cpu or auto.")
    index = int(device.split(":")[1]) if ":" in device else 0
    if index >= torch.cuda.device_count():
        raise ConfigError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) visible.")
    return f"cuda:{index}"
