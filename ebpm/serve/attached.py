"""`ebpm run --agent ADDRESS TARGET`: a run in the agent, attached to this terminal as `docker
run` is to its daemon (and `--detach` is `docker run -d`). The agent pulls, verifies and loads
TARGET (from its warm cache when it holds it), this process prints the program's events until
Ctrl-C, SIGTERM, --duration or --max-events, then the agent stops it: nothing of the run is
left in the agent. A program stopped meanwhile by someone else (`ebpm stop ID`) ends the run.
"""

from __future__ import annotations

import signal
import time

from ebpm.errors import NotFoundError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from ebpm.run.sink import EventSink, RunSummary
    from ebpm.serve.client import AgentClient

__all__ = ["run_in_agent"]


class _Stop(BaseException):
    """Raised by a signal handler (or the --duration timer) in the middle of reading events."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _raise(reason: str) -> Any:
    def handler(signum: int, frame: Any) -> None:
        raise _Stop(reason)

    return handler


def _restore(saved: dict[Any, Any]) -> None:
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def run_in_agent(
    client: AgentClient, target: str, *, args: Sequence[str] = (), allow_unsigned: bool = False,
    duration: float | None = None, max_events: int | None = None, sink: EventSink,
) -> RunSummary:
    """Start TARGET in the agent behind `client`, hand its events to `sink` (its start line
    names the agent and the program's id) and stop it when the run ends (main thread)."""
    from ebpm.run.sink import RunStart, RunSummary, announce

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM,
                                                      signal.SIGALRM)}
    asked: list[int] = []

    def starting(signum: int, frame: Any) -> None:  # while the agent starts it
        if asked:  # a second one: leave now (the agent finishes starting it)
            raise KeyboardInterrupt
        asked.append(signum)  # the first: stop it as soon as it has an id

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, starting)
    try:
        doc = client.call("POST", "/v1/programs", {
            "ref": target, "args": list(args), "allow_unsigned": allow_unsigned})
    except BaseException:
        _restore(saved)
        raise
    program = f"/v1/programs/{doc['id']}"
    started = time.monotonic()
    count, lost, stopped_by = 0, 0, "stopped"
    try:
        signal.signal(signal.SIGINT, _raise("signal"))
        signal.signal(signal.SIGTERM, _raise("signal"))
        if asked:
            raise _Stop("signal")
        if duration:
            signal.signal(signal.SIGALRM, _raise("duration"))
            signal.setitimer(signal.ITIMER_REAL, duration)
        announce(sink, RunStart(
            package=str(doc["package"]), mode="native", attached=tuple(doc.get("attached", ())),
            duration=duration, agent=str(client.endpoint), program_id=str(doc["id"])))
        for record in client.stream(f"{program}/events?follow=true&tail=all&format=ndjson"):
            if "_ebpm" in record:
                lost = int(record.get("lost", lost))
                continue
            sink.event(record)
            count += 1
            if max_events is not None and count >= max_events:
                stopped_by = "max-events"
                break
    except _Stop as stop:
        stopped_by = stop.reason
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for sig in (signal.SIGINT, signal.SIGTERM):  # the program is stopped whatever comes
            signal.signal(sig, signal.SIG_IGN)
        try:
            final = client.call("DELETE", program)
        except NotFoundError:  # stopped by someone else: the stream ended with it
            final = {}
        finally:
            _restore(saved)
    return RunSummary(
        package=str(doc["package"]), events=count, lost=lost + int(final.get("lost", 0)),
        seconds=time.monotonic() - started, stopped_by=stopped_by,
        attached=tuple(doc.get("attached", ())), dropped=())
