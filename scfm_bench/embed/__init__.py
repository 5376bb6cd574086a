"""The only code that touches devices, batching, precision, caching and resource accounting."""

from scfm_bench.embed.cache import EmbeddingCache, cache_key
from scfm_bench.embed.device import primary_device, resolve_device
from scfm_bench.embed.engine import EmbeddingResult, adapter_cache_key, embed, validate_embedding
from scfm_bench.embed.memory import PeakMemory

__all__ = ["EmbeddingCache", "EmbeddingResult", "adapter_cache_key", "PeakMemory", "cache_key", "embed", "primary_device", "resolve_device", "validate_embedding"]
