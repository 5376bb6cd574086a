"""The one progress-bar helper (rich). The CLI turns it off with --quiet or when stderr is not a terminal."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

_enabled = True


def set_enabled(enabled: bool) -> None:
    global _enabled
    _enabled = enabled


@contextmanager
def progress_bar(description: str, total: int | None, *, unit: str = "cells") -> Iterator:
    """Yields ``advance(n)``; a no-op when progress is disabled."""
    if not _enabled:
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed:,.1f} {unit}/s" if task.speed else "", style="progress.data.speed")

    columns = [TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(), Rate(),
               TimeElapsedColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=True) as prog:
        task = prog.add_task(description, total=total)
        yield lambda n=1: prog.advance(task, n)
