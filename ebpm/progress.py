"""How long-running use cases report progress without printing: hooks that default to no-ops."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["ProgressReporter", "NULL_REPORTER"]


class ProgressReporter:
    """Progress hooks; the default does nothing. The CLI passes one that draws bars."""

    def task(self, description: str, total: int, *, unit: str = "bytes"
             ) -> Callable[[int], None]:
        """Start a task of `total` units ("bytes" or "items"); returns `advance(n)`."""
        return _ignore

    def done(self, description: str) -> None:
        """A task finished."""

    def message(self, text: str) -> None:
        """A short status line (e.g. 'already up to date')."""


def _ignore(_: int) -> None:
    return None


NULL_REPORTER = ProgressReporter()
