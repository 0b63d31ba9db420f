"""A `Stop` (ebpm.run.stop) or a signal ends a run's wait at once, however long the wait was
to be: the agent's DELETE and Ctrl-C used to wait out the run's poll (up to 100 ms)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from typing import Any

import pytest

from ebpm.run import EventSink, load_path, native, run_object
from ebpm.run.stop import Stop
from tests.loader.conftest import require_bpf

pytestmark = pytest.mark.kernel


PACKAGES = pytest.mark.parametrize("name", [
    "opensnoop",  # a perf buffer read from memory (one stream: the wait is the stop's epoll)
    "twostreams",  # a ring buffer and a perf buffer: one epoll for both and the stop
    "runqlat",  # no event stream, result maps only: the wait between snapshots
])


@PACKAGES
def test_a_stop_ends_the_runs_wait_at_once(built, monkeypatch, name: str) -> None:
    require_bpf()
    monkeypatch.setattr(native, "_POLL_MS", 3_600_000.0)  # without the wake: an hour's wait
    pkg = load_path(built(name))
    quiet = subprocess.Popen(["sleep", "600"])  # a process that opens nothing: no event
    stop = Stop()
    attached = threading.Event()
    summaries: list[Any] = []

    class Attached(EventSink):
        def started(self, session: Any) -> None:
            attached.set()

    args = ["--pid", str(quiet.pid)] if name != "runqlat" else []
    thread = threading.Thread(target=lambda: summaries.append(run_object(
        pkg.object, pkg.config, btf=pkg.btf, args=args, interval=3600, sink=Attached(),
        stop=stop)), daemon=True)
    try:
        thread.start()
        assert attached.wait(60), "the run never attached"
        time.sleep(0.3)  # (well inside its wait)
        stop.set()
        thread.join(60)
        assert not thread.is_alive(), "the stop did not end the run's wait"
        assert summaries[0].stopped_by == "stopped"
    finally:
        quiet.kill()
        quiet.wait()
        stop.close()


@PACKAGES
def test_a_signal_ends_the_runs_wait_at_once(built, monkeypatch, name: str) -> None:
    """SIGTERM to this process (the run is in the main thread, its handlers installed): the
    run's wait ends then, not at the end of its poll (an hour here) or its duration. (Were
    the wait not ended, the run's 5 s grace would end this whole process: a loud failure.)"""
    require_bpf()
    monkeypatch.setattr(native, "_POLL_MS", 3_600_000.0)
    pkg = load_path(built(name))
    quiet = subprocess.Popen(["sleep", "600"])

    class SignalWhenAttached(EventSink):
        def started(self, session: Any) -> None:
            threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()

    args = ["--pid", str(quiet.pid)] if name != "runqlat" else []
    try:
        summary = run_object(pkg.object, pkg.config, btf=pkg.btf, args=args, interval=3600,
                             duration=60, sink=SignalWhenAttached())
    finally:
        quiet.kill()
        quiet.wait()
    assert summary.stopped_by == "signal"  # (not "duration": the wait went on until then)


def test_a_stop_closed_then_set_writes_nowhere() -> None:
    """The run closes the fd when it stops polling; a later `set()` (the agent's DELETE after
    the run failed) only sets the flag, and a fd made after the set is readable at once."""
    stop = Stop()
    fd = stop.fileno()
    assert fd is not None and stop.fileno() == fd
    stop.close()
    assert stop.fileno() is None
    with pytest.raises(OSError):
        os.fstat(fd)  # closed (nothing reopened it in between in this test)
    stop.set()
    assert stop.is_set()
    early = Stop()
    early.set()
    fd = early.fileno()
    assert fd is not None and os.eventfd_read(fd) == 1
    early.close()
