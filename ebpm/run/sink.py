"""What a run hands out: decoded events and map snapshots to an `EventSink`, then a `RunSummary`."""

from __future__ import annotations

from ebpm.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ebpm.loader.session import Dropped, Session
    from ebpm.loader.snapshots import MapSnapshot

__all__ = ["EventSink", "RunStart", "RunSummary", "announce"]


@record
class RunStart:
    """What a run is about to show: for the start line (stderr) or the JSON start record."""

    package: str
    mode: str  # "native" or "wasm"
    attached: tuple[str, ...] = ()  # "PROGRAM -> HOOK" (native)
    events: tuple[str, ...] = ()  # event stream maps
    results: tuple[str, ...] = ()  # result maps
    iterators: tuple[str, ...] = ()  # iterator programs, read once to their end
    duration: float | None = None
    allow_types: tuple[str, ...] = ()  # program types a wasm guest may load
    agent: str = ""  # the agent's address when the agent runs it (`ebpm run --agent`)
    program_id: str = ""  # and its id there


class EventSink:
    """Receives what a run produces; every hook defaults to doing nothing."""

    # the run reads each iterator program once, right after the attach, into `output` (and a
    # package without an event stream then ends); False: they stay attached, for the sink's
    # owner to read when it likes (`Session.iterators`: the agent, on each request)
    iterates: bool = True

    def started(self, session: Session) -> None:
        """The package is loaded and attached; `session.dropped` names the programs left out."""

    def start(self, info: RunStart) -> None:
        """The run is under way (native: attached; wasm: the guest is about to start)."""

    def event(self, event: dict[str, Any]) -> None:
        """One decoded event."""

    def maps(self, snapshots: list[MapSnapshot], final: bool) -> None:
        """Result maps, every interval and once at the end (`final`)."""

    def output(self, program: str, data: bytes) -> None:
        """What an iterator program wrote (bpf_seq_printf, bpf_seq_write): each of them is
        read once, to its end, right after the attach; a chunk at a time, in order."""

    def flush(self) -> None:
        """The events handed over so far are all there are for now: the run is about to wait
        for more. A printer writes out what it holds (one write for a whole batch of events,
        not one per line, and nothing held back while the run waits)."""


@record
class RunSummary:
    """How a run ended. A wasm userspace run reports its exit `status` and no event counts."""

    package: str
    events: int
    lost: int
    seconds: float
    stopped_by: str  # "duration", "max-events", "stopped", "signal"; "exit" for a wasm run;
    # "iterated": its iterators were read to their end and it has no event stream
    attached: tuple[str, ...]
    dropped: tuple[Dropped, ...]
    status: int = 0  # the wasm userspace's exit status (0 for a native run)
    maps: tuple[tuple[str, int], ...] = ()  # result maps: rows in the final snapshot
    output: tuple[tuple[str, int], ...] = ()  # iterator programs: bytes each wrote
    unit: str = ""  # the histograms' unit, when there are histograms
    hard_stopped: bool = False  # a wasm guest that ignored the graceful stop was interrupted
    mode: str = "native"  # or "wasm"


def announce(sink: object, info: RunStart) -> None:
    """Tell `sink` the run is under way; sinks written before `start` existed (duck-typed
    `started`/`event`/`maps` objects) are left alone."""
    start = getattr(sink, "start", None)
    if start is not None:
        start(info)
