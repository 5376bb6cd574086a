"""Peak memory of a block: resident set size sampled by a thread (Linux /proc), CUDA peak from torch."""

from __future__ import annotations

import resource
import sys
import threading
from pathlib import Path

_STATUS = Path("/proc/self/status")


def _rss_mb() -> float:
    if _STATUS.exists():
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    # ru_maxrss is the process-lifetime peak (kB on Linux, bytes on macOS): an upper bound
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


class PeakMemory:
    """``with PeakMemory() as pm: ...`` then ``pm.peak_ram_mb`` / ``pm.peak_gpu_mb``."""

    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s = interval_s
        self.peak_ram_mb = 0.0
        self.peak_gpu_mb: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_ram_mb = max(self.peak_ram_mb, _rss_mb())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "PeakMemory":
        self.peak_ram_mb = _rss_mb()
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                torch.cuda.reset_peak_memory_stats(i)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_ram_mb = max(self.peak_ram_mb, _rss_mb())
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():  # the busiest GPU's peak (data-parallel shards)
            self.peak_gpu_mb = max(torch.cuda.max_memory_allocated(i) for i in range(torch.cuda.device_count())) / 2**20
