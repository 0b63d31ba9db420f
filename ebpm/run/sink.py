"""What a run hands out: decoded events and map snapshots to an `EventSink`, then a `RunSummary`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ebpm.loader.session import Dropped, Session
    from ebpm.loader.snapshots import MapSnapshot

__all__ = ["EventSink", "RunSummary"]


class EventSink:
    """Receives what a run produces; every hook defaults to doing nothing."""

    def started(self, session: Session) -> None:
        """The package is loaded and attached; `session.dropped` names the programs left out."""

    def event(self, event: dict[str, Any]) -> None:
        """One decoded event."""

    def maps(self, snapshots: list[MapSnapshot], final: bool) -> None:
        """Result maps, every interval and once at the end (`final`)."""


@dataclass(frozen=True)
class RunSummary:
    """How a run ended. A wasm userspace run reports its exit `status` and no event counts."""

    package: str
    events: int
    lost: int
    seconds: float
    stopped_by: str  # "duration", "max-events", "stopped", "signal"; "exit" for a wasm run
    attached: tuple[str, ...]
    dropped: tuple[Dropped, ...]
    status: int = 0  # the wasm userspace's exit status (0 for a native run)
