"""One generic registry; ADAPTERS, TASKS and METRICS are its instances.

Built-in items register themselves in their own module (one file per adapter/task/metric); a
registry imports every module of its package on first use, and ADAPTERS also loads third-party
plug-ins from the ``scfm_bench.adapters`` entry-point group.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import pkgutil
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from scfm_bench.exceptions import DuplicateKeyError, UnknownKeyError

log = logging.getLogger(__name__)

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, package: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self._package = package
        self._entry_point_group = entry_point_group
        self._items: dict[str, T] = {}
        self._origin: dict[str, str] = {}
        self._loaded = False

    def register(self, key: str) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``key`` (stable snake_case)."""

        def deco(obj: T) -> T:
            self.add(key, obj)
            return obj

        return deco

    def add(self, key: str, obj: T, *, origin: str | None = None) -> None:
        if not key.isidentifier() or key != key.lower():
            raise DuplicateKeyError(f"{self.kind} key {key!r} must be snake_case (lower-case identifier).")
        origin = origin or getattr(obj, "__module__", "?")
        if key in self._items and self._items[key] is not obj:
            raise DuplicateKeyError(
                f"{self.kind} key {key!r} is registered twice: by {self._origin[key]} and by {origin}. Rename one of them."
            )
        self._items[key] = obj
        self._origin[key] = origin

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        pkg = importlib.import_module(self._package)
        for mod in pkgutil.iter_modules(pkg.__path__):
            if not mod.name.startswith("_"):
                importlib.import_module(f"{self._package}.{mod.name}")
        if self._entry_point_group:
            from importlib.metadata import entry_points

            for ep in entry_points(group=self._entry_point_group):
                try:
                    ep.load()  # the plug-in module registers itself on import
                except Exception as e:  # a broken plug-in must not take the built-in models down with it
                    log.warning("%s plug-in %r (%s) failed to import and is unavailable: %s: %s", self.kind, ep.name, ep.value,
                                type(e).__name__, e)

    def get(self, key: str) -> T:
        self._load()
        try:
            return self._items[key]
        except KeyError:
            raise UnknownKeyError(self._unknown_message(key)) from None

    def _unknown_message(self, key: str) -> str:
        close = difflib.get_close_matches(key, self._items, n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        return f"Unknown {self.kind} {key!r}.{hint} Known: {', '.join(sorted(self._items))}."

    def __contains__(self, key: object) -> bool:
        self._load()
        return key in self._items

    def keys(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        self._load()
        return iter(sorted(self._items.items()))

    def origin(self, key: str) -> str:
        self.get(key)
        return self._origin[key]


ADAPTERS: Registry = Registry("model", "scfm_bench.adapters", entry_point_group="scfm_bench.adapters")
TASKS: Registry = Registry("task", "scfm_bench.tasks")
METRICS: Registry = Registry("metric", "scfm_bench.metrics")
