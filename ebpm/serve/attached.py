"""`ebpm run --agent ADDRESS TARGET`: a run in the agent, attached to this terminal as `docker
run` is to its daemon (and `--detach` is `docker run -d`). The agent pulls, verifies and loads
TARGET (from its warm cache when it holds it), this process prints the program's events until
Ctrl-C, SIGTERM, --duration or --max-events, then the agent stops it: nothing of the run is
left in the agent. A program stopped meanwhile by someone else (`ebpm stop ID`) ends the run,
and so does a run that ends by itself in the agent (its event stream's end record says how):
with a standalone run's summary and exit status (a WebAssembly guest's), or its error.
Its result maps are printed as a standalone run prints them: every interval (by default every
second for a package without an event stream) and at the end, each report holding what was
counted since the last (the agent never empties a map: the difference of two readings).
Its iterator programs are read once, to their end, right after the attach (`GET
.../output`), and what they wrote is printed as a standalone run prints it; a package
without an event stream then ends (stopped: iterated).
"""

from __future__ import annotations

import signal
import time

from ebpm.errors import NotFoundError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from ebpm.loader.snapshots import MapSnapshot
    from ebpm.run.sink import EventSink, RunSummary
    from ebpm.serve.client import AgentClient

__all__ = ["run_in_agent"]

DEFAULT_INTERVAL = 1.0  # seconds between map reports without an event stream (as `ebpm run`)
_ENDED = ("exited", "failed")  # a program's status once its run ended by itself


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


class _Reports:
    """The program's result maps, read from the agent and handed to the sink as what each map
    counted since the previous report."""

    def __init__(self, client: AgentClient, program_id: str, sink: EventSink) -> None:
        self.client = client
        self.program_id = program_id
        self.sink = sink
        self.before: dict[str, MapSnapshot] = {}
        self.final: list[MapSnapshot] = []
        self.ended: dict[str, Any] = {}  # how its run ended by itself, if it did

    def report(self, *, final: bool) -> bool:
        """One report; False when the program is gone (stopped from elsewhere) or its run
        ended by itself (`ended` says how)."""
        from ebpm.loader.snapshots import since

        try:
            now = self.client.maps(self.program_id)
            if not now:  # the run is ending in the agent, or over: nothing to read any more
                doc = self.client.call("GET", f"/v1/programs/{self.program_id}")
                if doc.get("status") in _ENDED:
                    self.ended = {"status": doc["status"], "error": doc.get("error")}
                    return False
                return True
        except NotFoundError:
            return False
        shown = [since(snap, self.before.get(snap.name)) for snap in now]
        self.before = {snap.name: snap for snap in now}
        self.sink.maps(shown, final)
        if final:
            self.final = shown
        return True


def _ticking(reports: _Reports, interval: float, lock: Any) -> Any:
    """A thread that reports every `interval` seconds while events stream; `.stop()` ends it."""
    import threading

    done = threading.Event()

    def tick() -> None:
        from ebpm.errors import EbpmError

        while not done.wait(interval):
            with lock:
                try:
                    if done.is_set() or not reports.report(final=False):
                        return
                except EbpmError:  # (the agent went away: the event stream says so)
                    return

    thread = threading.Thread(target=tick, name="ebpm-map-reports", daemon=True)
    thread.start()

    class Ticker:
        def stop(self) -> None:
            done.set()
            with lock:  # (a report under way ends first)
                pass
            thread.join()

    return Ticker()


def run_in_agent(
    client: AgentClient, target: str, *, args: Sequence[str] = (), allow_unsigned: bool = False,
    duration: float | None = None, max_events: int | None = None,
    interval: float | None = None, sink: EventSink,
) -> RunSummary:
    """Start TARGET in the agent behind `client`, hand its events and result maps to `sink`
    (its start line names the agent and the program's id) and stop it when the run ends (main
    thread)."""
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
    streams = doc.get("streams")  # (None: an older agent, which says nothing of its maps)
    results = tuple(doc.get("results", ()))
    iterators = tuple(doc.get("iterators", ()))
    output: tuple[tuple[str, int], ...] = ()
    reports = _Reports(client, str(doc["id"]), sink) if results else None
    polling = reports is not None and streams == []  # result maps only: nothing to stream
    if polling and interval is None:
        interval = DEFAULT_INTERVAL
    ticker = None
    gone = False
    ended: dict[str, Any] = {}  # the event stream's end record
    try:
        signal.signal(signal.SIGINT, _raise("signal"))
        signal.signal(signal.SIGTERM, _raise("signal"))
        if duration and not polling and not asked:
            signal.signal(signal.SIGALRM, _raise("duration"))
            signal.setitimer(signal.ITIMER_REAL, duration)
        announce(sink, RunStart(
            package=str(doc["package"]), mode="native", attached=tuple(doc.get("attached", ())),
            events=tuple(streams or ()), results=results, iterators=iterators,
            duration=duration, agent=str(client.endpoint), program_id=str(doc["id"])))
        if asked:  # (stopped while the agent started it: it was attached, the start says so,
            raise _Stop("signal")  # then the summary, as a run stopped at once prints them)
        if iterators:  # one-shots: read to their end now
            output = _iterate(client, str(doc["id"]), str(doc["package"]), sink)
        if iterators and not streams:  # nothing more will come
            stopped_by = "iterated"
        elif polling:
            assert reports is not None and interval is not None
            stopped_by, gone = _poll(reports, interval, started, duration)
        else:
            event: Callable[[dict[str, Any]], None] = sink.event
            if reports is not None and interval:
                import threading

                lock: Any = threading.Lock()
                ticker = _ticking(reports, interval, lock)
                emit = sink.event

                def event(record: dict[str, Any]) -> None:
                    with lock:
                        emit(record)
            for record in client.stream(f"{program}/events?follow=true&tail=all&format=ndjson"):
                if "_ebpm" in record:
                    lost = int(record.get("lost", lost))
                    if record["_ebpm"] == "end":
                        ended = record
                    continue
                event(record)
                count += 1
                if max_events is not None and count >= max_events:
                    stopped_by = "max-events"
                    break
        if reports is not None and reports.ended:  # (a map report found it over)
            ended, gone = ended or reports.ended, False
    except _Stop as stop:
        stopped_by = stop.reason
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for sig in (signal.SIGINT, signal.SIGTERM):  # the program is stopped whatever comes
            signal.signal(sig, signal.SIG_IGN)
        try:
            if ticker is not None:
                ticker.stop()
            if reports is not None and not gone:
                gone = not reports.report(final=True) and not reports.ended
            final = {} if gone else client.call("DELETE", program)
        except NotFoundError:  # stopped by someone else: the stream ended with it
            final = {}
        finally:
            _restore(saved)
    shown = reports.final if reports is not None else []
    status, mode = 0, "native"
    if ended.get("status") in _ENDED:  # it ended by itself in the agent
        stopped_by = "exited"
        if ended.get("exit_status") is not None:  # a guest: its status, as a standalone run
            status, mode, stopped_by = int(ended["exit_status"]), "wasm", "exit"
        elif ended["status"] == "failed":
            from ebpm.serve.client import AgentError

            raise AgentError(str(ended.get("error") or f"{doc['package']}: its run failed "
                                 "in the agent"),
                             hint=ended.get("hint") or "run it without --agent (-v) to see "
                             "more")
    return RunSummary(
        package=str(doc["package"]), events=count, lost=lost + int(final.get("lost", 0)),
        seconds=time.monotonic() - started, stopped_by=stopped_by,
        attached=tuple(doc.get("attached", ())), dropped=(),
        maps=tuple((snap.name, len(snap.rows)) for snap in shown),
        unit=next((snap.unit for snap in shown if snap.kind == "hist"), ""), output=output,
        status=status, mode=mode)


def _iterate(client: AgentClient, program_id: str, package: str,
             sink: EventSink) -> tuple[tuple[str, int], ...]:
    """The program's iterators read once by the agent (`GET .../output`), their text handed to
    the sink as a standalone run hands it; returns (program, bytes written) of each."""
    from ebpm.errors import LoadError

    end = client.output(program_id, sink.output)
    sink.flush()
    if end.get("error"):
        raise LoadError(f"{package}: the agent could not read its output: {end['error']}",
                        hint="run it without --agent (-v) to see the kernel's answer there")
    sizes = tuple((str(name), int(size)) for name, size in dict(end.get("output", {})).items())
    cut = end.get("truncated")
    if cut in ("limit", "time"):
        from ebpm import log

        why = "its limit for one read" if cut == "limit" else "it took too long"
        log.get("ebpm.run").warning(
            "%s: the agent cut the output after %d bytes (%s); run it without --agent to "
            "read all of it", package, sum(size for _, size in sizes), why)
    return sizes


def _poll(reports: _Reports, interval: float, started: float,
          duration: float | None) -> tuple[str, bool]:
    """A package with result maps only: a report every `interval` until the duration is over
    (the last interval's counts are the final report's) or the program is gone; a signal ends
    it sooner (_Stop). Returns why it stopped and whether the program is gone."""
    deadline = started + duration if duration else None
    due = started + interval
    while True:
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            return "duration", False
        time.sleep(max(0.0, min(due, deadline or due) - now))
        if deadline is not None and time.monotonic() >= deadline:
            return "duration", False
        if not reports.report(final=False):
            return "stopped", True
        due += interval
