"""Rendering helpers for the face: progress bars and tables (rich, imported only when drawn)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import click

from ebpm.progress import NULL_REPORTER, ProgressReporter

__all__ = ["progress", "table", "human_size"]


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


class _RichReporter(ProgressReporter):
    def __init__(self, bar: Any) -> None:
        self._bar = bar
        self._tasks: dict[str, Any] = {}

    def task(self, description: str, total: int, *, unit: str = "bytes"
             ) -> Callable[[int], None]:
        task_id = self._bar.add_task(description, total=total or None, items=unit == "items")
        self._tasks[description] = task_id
        return lambda n: self._bar.advance(task_id, n)

    def done(self, description: str) -> None:
        task_id = self._tasks.get(description)
        for task in self._bar.tasks:
            if task.id == task_id and task.total:
                self._bar.update(task_id, completed=task.total)

    def message(self, text: str) -> None:
        self._bar.console.print(text)


@contextmanager
def progress(enabled: bool = True) -> Iterator[ProgressReporter]:
    """Transfer bars (on stderr) when stdout and stderr are terminals; else a silent reporter."""
    if not enabled or not (sys.stdout.isatty() and sys.stderr.isatty()):
        yield NULL_REPORTER
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TransferSpeedColumn,
    )

    class Amount(ProgressColumn):
        """Bytes with speed for transfers, 'done/total' for counted items."""

        def __init__(self) -> None:
            super().__init__()
            self._bytes, self._speed, self._items = (DownloadColumn(), TransferSpeedColumn(),
                                                     MofNCompleteColumn())

        def render(self, task: Any) -> Any:
            if task.fields.get("items"):
                return self._items.render(task)
            from rich.text import Text

            return Text.assemble(self._bytes.render(task), " ", self._speed.render(task))

    bar = Progress(
        TextColumn("{task.description:<24}"), BarColumn(), Amount(),
        console=Console(stderr=True), transient=True,
    )
    with bar:
        yield _RichReporter(bar)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str = "") -> None:
    """A table for people: rich on a terminal, plain aligned columns when piped."""
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        t = Table(title=title or None, box=None, header_style="bold")
        for h in headers:
            t.add_column(h, overflow="fold")  # never cut a reference or digest short
        for row in rows:
            t.add_row(*(str(c) for c in row))
        Console().print(t)
        return
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for r in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
