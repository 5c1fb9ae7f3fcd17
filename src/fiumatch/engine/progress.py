"""Progress bars for long engine jobs (epoch encoding, benchmarks): count, rate and ETA.

A thin wrapper over ``rich.progress`` that writes to stderr, so a command's stdout stays
machine-readable. It must never show what is being processed (keys, outputs), only counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

__all__ = ["Advance", "RateColumn", "progress_bar"]


class RateColumn(ProgressColumn):
    """Items per second, e.g. ``12,345 keys/s``."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text(f"? {self.unit}/s", style="progress.data.speed")
        return Text(f"{speed:,.0f} {self.unit}/s", style="progress.data.speed")


class Advance(Protocol):
    def __call__(self, n: int = 1, description: str | None = None) -> None: ...


def _nothing(n: int = 1, description: str | None = None) -> None:
    return None


@contextmanager
def progress_bar(
    description: str, *, total: int | None, unit: str = "items", enabled: bool = True
) -> Iterator[Advance]:
    """Yield ``advance(n=1, description=None)``; when ``enabled``, a bar on stderr shows
    done/total, rate and ETA (``description`` replaces the bar's label)."""
    if not enabled:
        yield _nothing
        return
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=total)

        def advance(n: int = 1, description: str | None = None) -> None:
            if description is not None:
                bar.update(task, description=description)
            bar.advance(task, n)

        yield advance
