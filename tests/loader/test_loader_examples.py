"""Each example of examples/, built by `ebpm build`, triggered here and checked by its output."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from ebpm.run import EventSink, RunSummary, load_path, run_object
from tests.loader.conftest import Trigger, require_bpf

pytestmark = pytest.mark.kernel


class Until(EventSink):
    """Keeps events; stops the run (as Ctrl-C does) at the first one that matches."""

    def __init__(self, match: Callable[[dict[str, Any]], bool]) -> None:
        self.match = match
        self.events: list[dict[str, Any]] = []
        self.hit: dict[str, Any] | None = None
        self.snapshots: list[tuple[list[Any], bool]] = []

    def event(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        if self.hit is None and self.match(event):
            self.hit = event
            raise KeyboardInterrupt

    def maps(self, snapshots: list[Any], final: bool) -> None:
        self.snapshots.append((snapshots, final))


def run_example(
    built: Callable[[str], Any], name: str, action: Callable[[], object], args: list[str],
    match: Callable[[dict[str, Any]], bool], **options: Any,
) -> tuple[dict[str, Any], RunSummary]:
    require_bpf()
    pkg = load_path(built(name))
    reporter = Until(match)
    with Trigger(action, 0.05):
        summary = run_object(pkg.object, pkg.config, btf=pkg.btf, args=args, duration=10,
                             sink=reporter, **options)
    assert reporter.hit is not None, f"{name}: no matching event in {reporter.events[:5]}"
    return reporter.hit, summary


def test_opensnoop_perf_buffer(built) -> None:
    path = f"/tmp/ebpm-opensnoop-{uuid.uuid4().hex}"

    def open_missing() -> None:
        try:
            open(path).close()
        except FileNotFoundError:
            pass

    event, summary = run_example(built, "opensnoop", open_missing,
                                 ["--pid", str(os.getpid()), "--failed"],
                                 lambda e: e["fname"] == path)
    assert event["ret"] == -2  # -ENOENT
    assert event["pid"] == os.getpid() and event["uid"] == os.getuid()
    assert event["flags"] & os.O_CLOEXEC == os.O_CLOEXEC
    assert summary.lost == 0 and summary.stopped_by == "signal"


def test_execsnoop_arguments(built) -> None:
    def exec_echo() -> None:
        subprocess.run(["/bin/echo", "ebpm-exec", "x y"], check=True, capture_output=True)

    event, _ = run_example(built, "execsnoop", exec_echo, ["--ppid", str(os.getpid())],
                           lambda e: e["comm"] == "echo")
    assert event["args"][:4] == ["/bin/echo", "ebpm-exec", "x y", ""]
    assert event["args_count"] == 3 and event["retval"] == 0
    assert event["ppid"] == os.getpid()


def test_exitsnoop_exit_code(built) -> None:
    def exit_3() -> None:
        subprocess.run(["/bin/sh", "-c", "exit 3"])

    event, _ = run_example(built, "exitsnoop", exit_3, ["--failed"],
                           lambda e: e["ppid"] == os.getpid() and e["comm"] == "sh")
    assert event["exit_code"] == 3 and event["sig"] == 0
    assert event["exit_time"] >= event["start_time"] > 0


def test_sigsnoop_signal(built) -> None:
    child = subprocess.Popen(["/bin/sleep", "30"])
    try:
        event, _ = run_example(built, "sigsnoop", lambda: os.kill(child.pid, signal.SIGCONT),
                               ["--pid", str(os.getpid()), "--signal", str(int(signal.SIGCONT))],
                               lambda e: e["tpid"] == child.pid)
    finally:
        child.kill()
        child.wait()
    assert event["sig"] == signal.SIGCONT and event["ret"] == 0
    assert event["pid"] == os.getpid()


def test_tcpconnect_connect(built) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        port = server.getsockname()[1]

        def connect() -> None:
            socket.create_connection(("127.0.0.1", port)).close()

        event, summary = run_example(built, "tcpconnect", connect,
                                     ["--pid", str(os.getpid()), "--port", str(port)],
                                     lambda e: e["dport"] == port)
    assert event["af"] == socket.AF_INET
    # 16-byte `*addr` fields are addresses (IPv4 here: the last 12 bytes are zero)
    assert event["daddr"] == "127.0.0.1" and event["saddr"] == "127.0.0.1"
    assert event["pid"] == os.getpid() and event["comm"]
    assert len(summary.attached) == 1  # one program of the tp_btf/tracepoint pair


def test_runqlat_histogram(built) -> None:
    require_bpf()
    pkg = load_path(built("runqlat"))
    reporter = Until(lambda e: False)
    with Trigger(lambda: subprocess.run(["/bin/true"]), 0.02):
        summary = run_object(pkg.object, pkg.config, btf=pkg.btf, duration=0.8, interval=0.3,
                             sink=reporter)
    assert summary.stopped_by == "duration"
    assert [final for _, final in reporter.snapshots][-1] is True
    assert len(reporter.snapshots) >= 2  # every interval, then at exit
    final = reporter.snapshots[-1][0]
    assert [s.name for s in final] == ["hists"] and final[0].kind == "hist"
    (key, value), = final[0].rows
    assert key == 0xFFFFFFFF and len(value["slots"]) == 26 and sum(value["slots"]) > 0
    assert len(summary.attached) == 3  # one of each tp_btf/raw_tp pair
