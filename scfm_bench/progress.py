"""The one progress helper (rich). The CLI turns it off with --quiet or when stderr is not a terminal.

One live display at a time: bars opened while another is showing (an embedding's cells inside the
run's cell line, scVI's epochs inside an embedding) become extra lines of the same display."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

_enabled = True
_live = None  # the rich Progress on screen, if any


def set_enabled(enabled: bool) -> None:
    global _enabled
    _enabled = enabled


def enabled() -> bool:
    return _enabled


@contextmanager
def _display() -> Iterator:
    """The rich Progress to add a line to: the one on screen, else a new one shown for this block."""
    global _live
    if _live is not None:
        yield _live
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task) -> Text:
            unit = task.fields.get("unit", "")
            return Text(f"{task.speed:,.1f} {unit}/s" if task.speed and unit else "", style="progress.data.speed")

    class Remaining(TimeRemainingColumn):
        def render(self, task) -> Text:  # an ETA only for the run's cell line; per-step rates say the rest
            return super().render(task) if task.fields.get("eta") else Text("")

    columns = [TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(), Rate(),
               TimeElapsedColumn(), Remaining()]
    with Progress(*columns, console=Console(stderr=True), transient=True) as prog:
        _live = prog
        try:
            yield prog
        finally:
            _live = None


@contextmanager
def progress_bar(description: str, total: int | None, *, unit: str = "cells", eta: bool = False) -> Iterator[Callable]:
    """Yields ``advance(n)``; a no-op when progress is disabled."""
    if not _enabled:
        yield lambda n=1: None
        return
    with _display() as prog:
        task = prog.add_task(description, total=total, unit=unit, eta=eta)
        try:
            yield lambda n=1: prog.advance(task, n)
        finally:
            prog.remove_task(task)


class RunProgress:
    """The run's line: "cell k/N · task · dataset · model · seed", elapsed time and ETA."""

    def __init__(self, advance: Callable, describe: Callable, total: int) -> None:
        self._advance, self._describe, self.total, self.k = advance, describe, total, 0

    def start(self, task: str, dataset: str, model: str, seed: int) -> None:
        self.k += 1
        self._describe(f"cell {self.k}/{self.total} · {task} · {dataset} · {model} · seed {seed}")

    def done(self, n: int = 1) -> None:
        self._advance(n)


@contextmanager
def run_progress(total: int) -> Iterator[RunProgress]:
    if not _enabled:
        yield RunProgress(lambda n=1: None, lambda text: None, total)
        return
    with _display() as prog:
        task = prog.add_task(f"{total} cells", total=total, unit="", eta=True)
        try:
            yield RunProgress(lambda n=1: prog.advance(task, n), lambda text: prog.update(task, description=text), total)
        finally:
            prog.remove_task(task)
