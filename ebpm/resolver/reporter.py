"""Progress of a resolution: a resolvelib Reporter whose hooks default to no-ops."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from resolvelib import BaseReporter

__all__ = ["ResolutionReporter"]


class ResolutionReporter(BaseReporter):  # type: ignore[type-arg]
    """Calls `on_pin(package_id, version)` for every pin and `on_backtrack(n)` per conflict."""

    def __init__(
        self,
        *,
        on_pin: Callable[[str, str], None] | None = None,
        on_backtrack: Callable[[int], None] | None = None,
    ) -> None:
        self.on_pin = on_pin
        self.on_backtrack = on_backtrack
        self.pins = 0
        self.backtracks = 0

    def pinning(self, candidate: Any) -> None:
        self.pins += 1
        if self.on_pin is not None:
            self.on_pin(candidate.package, candidate.version_text)

    def resolving_conflicts(self, causes: Any) -> None:
        self.backtracks += 1
        if self.on_backtrack is not None:
            self.on_backtrack(self.backtracks)
