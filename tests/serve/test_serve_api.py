"""The agent against the real kernel and registry: start by reference, list, stream (NDJSON
and SSE, many readers), maps, metrics, hot swap without a gap, stop, and SIGTERM."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.bpfobjects import alive_ids, held_ids
from tests.cli import ebpm
from tests.serve.conftest import Agent, require_bpf, start_agent, wait_for

pytestmark = [pytest.mark.kernel, pytest.mark.registry]
ME = os.getpid()


def _trigger(n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        try:
            os.getpgid(i)
        except OSError:
            pass  # ESRCH: the call was still made (and traced)


def _events(agent: Agent, pid: str, query: str = "follow=false&tail=all") -> list[dict]:  # type: ignore[type-arg]
    return list(agent.client().stream(f"/v1/programs/{pid}/events?{query}"))


def _gone(ids: dict[str, set[int]]) -> bool:
    """None of these programs, links and maps exists any more."""
    return all(not (ids[kind] & alive_ids(kind)) for kind in ("prog", "link", "map"))


def test_start_list_stream_maps_metrics_stop(agent: Agent, published: Callable[..., str]) -> None:
    ref = published("svcprobe")
    prog = agent.start(ref, "--pid", str(ME), "--tag", "1")
    pid = prog["id"]
    assert prog["status"] == "running" and prog["digest"].startswith("sha256:")
    assert prog["attached"] == ["handle_getpgid -> tracepoint/syscalls/sys_enter_getpgid"]
    assert prog["signer"] == "unsigned-allowed"
    held = held_ids(agent.process.pid)
    assert len(held["prog"]) == 1 and len(held["link"]) == 1 and held["map"]
    _trigger(5, start=1)
    wait_for(lambda: agent.client().call("GET", f"/v1/programs/{pid}")["events"] >= 5)
    events = [e for e in _events(agent, pid) if "_ebpm" not in e]
    assert [e["arg"] for e in events] == [1, 2, 3, 4, 5]
    assert all(e["pid"] == ME and e["tag"] == 1 and e["comm"] for e in events)

    listing = agent.client().call("GET", "/v1/programs")["programs"]
    assert [(p["id"], p["ref"], p["events"], p["lost"]) for p in listing] == [(pid, ref, 5, 0)]
    assert listing[0]["uptime"] >= 0 and listing[0]["load_seconds"] > 0

    sse = agent.client().text(f"/v1/programs/{pid}/events?follow=false&tail=2&format=sse")
    blocks = [b for b in sse.split("\n\n") if b]
    assert json.loads(blocks[0].removeprefix("data: "))["arg"] == 4
    assert blocks[-1].startswith("event: end\ndata: ")

    maps = {m["map"]: m for m in agent.client().call("GET", f"/v1/programs/{pid}/maps")["maps"]}
    (row,) = maps["call_counts"]["rows"]
    assert row["key"]["pid"] == ME and row["value"] == 5
    (hist,) = maps["hist"]["rows"]
    assert [b["count"] for b in hist["buckets"]] == [1, 2, 2]  # 1 | 2,3 | 4,5
    assert hist["buckets"][2] == {"low": 4, "high": 7, "count": 2}

    metrics = agent.client().text("/metrics")
    comm = row["key"]["comm"]
    assert "# HELP svcprobe_calls_total getpgid calls per command" in metrics  # declared
    assert (f'svcprobe_calls_total{{comm="{comm}",id="{pid}",package="svcprobe"}} 5.0'
            in metrics)
    assert f'ebpm_svcprobe_hist_bucket{{id="{pid}",le="7",package="svcprobe"}} 5.0' in metrics
    assert f'ebpm_program_events_total{{id="{pid}",package="svcprobe"}} 5.0' in metrics

    stopped = agent.client().call("DELETE", f"/v1/programs/{pid[:6]}")
    assert stopped["id"] == pid and stopped["status"] == "stopped"
    assert agent.client().call("GET", "/v1/programs") == {"programs": []}
    wait_for(lambda: _gone(held), what="the program, its link and maps to be unloaded")
    assert held_ids(agent.process.pid) == {"prog": set(), "link": set(), "map": set()}


def test_verification_failure_is_422_and_the_agent_lives_on(
        agent: Agent, published: Callable[..., str]) -> None:
    from ebpm.errors import LoadError

    with pytest.raises(LoadError) as info:
        agent.start(published("badprobe"))
    assert "rejected by the kernel" in info.value.message
    assert "invalid mem access" in info.value.message  # the verifier's own words
    assert agent.client().call("GET", "/v1/programs") == {"programs": []}
    assert held_ids(agent.process.pid) == {"prog": set(), "link": set(), "map": set()}
    good = agent.start(published("svcprobe"), "--pid", str(ME))
    assert good["status"] == "running"
    held = held_ids(agent.process.pid)
    agent.client().call("DELETE", f"/v1/programs/{good['id']}")
    wait_for(lambda: _gone(held))


def _open_stream(agent: Agent, pid: str, query: str = "") -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(agent.socket))
    s.sendall(f"GET /v1/programs/{pid}/events?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return s


class _Follower:
    """A reader following a stream in a thread, keeping every record."""

    def __init__(self, agent: Agent, pid: str) -> None:
        self.records: list[dict] = []  # type: ignore[type-arg]
        self.it: Iterator[dict] = agent.client().stream(  # type: ignore[type-arg]
            f"/v1/programs/{pid}/events")
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for rec in self.it:
            self.records.append(rec)

    @property
    def events(self) -> list[dict]:  # type: ignore[type-arg]
        return [r for r in self.records if "_ebpm" not in r]


def test_many_readers_and_a_slow_one_loses_only_its_own(
        tmp_path: Path, published: Callable[..., str]) -> None:
    require_bpf()
    agent = start_agent(tmp_path, "--reader-buffer", "256")
    try:
        pid = agent.start(published("svcprobe"), "--pid", str(ME))["id"]
        fast = [_Follower(agent, pid) for _ in range(3)]
        slow = _open_stream(agent, pid)  # never read until the end
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        wait_for(lambda: agent.client().call("GET", f"/v1/programs/{pid}")["readers"] == 4)
        total, burst = 157 * 64, 64  # bursts the fast readers keep up with; the slow one cannot
        for start in range(0, total, burst):
            _trigger(burst, start)
            wait_for(lambda s=start: all(len(f.events) >= s + burst for f in fast),
                     what="the fast readers", interval=0.001)
        for f in fast:
            assert [e["arg"] for e in f.events] == list(range(total))
        info = agent.client().call("GET", f"/v1/programs/{pid}")
        assert info["events"] == total and info["lost"] == 0
        assert info["reader_lost"] > 0  # the slow reader's, counted
        agent.client().call("DELETE", f"/v1/programs/{pid}")
        data = b""
        slow.settimeout(10)
        while chunk := slow.recv(1 << 16):
            data += chunk
            if b'"_ebpm":"end"' in data:
                break
        slow.close()
        notices = [json.loads(ln) for ln in data.split(b"\r\n") if ln.startswith(b'{"_ebpm"')]
        assert notices and notices[-1]["_ebpm"] == "end" and notices[-1]["lost"] > 0
        for f in fast:
            f.thread.join(10)
            assert f.records[-1] == {"_ebpm": "end", "delivered": total, "lost": 0,
                                     "status": "stopped"}  # (DELETE ended it)
    finally:
        assert agent.stop() == 0, agent.output()


def test_client_disconnect_mid_stream(agent: Agent, published: Callable[..., str]) -> None:
    pid = agent.start(published("svcprobe"), "--pid", str(ME))["id"]
    for _ in range(5):
        s = _open_stream(agent, pid)
        wait_for(lambda: agent.client().call("GET", f"/v1/programs/{pid}")["readers"] == 1,
                 timeout=30, what="the reader to be subscribed")
        _trigger(50)
        assert s.recv(100)  # the stream is flowing
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()  # gone without a word, mid-stream
        _trigger(500)
        wait_for(lambda: agent.client().call("GET", f"/v1/programs/{pid}")["readers"] == 0,
                 timeout=30, what="the reader to be dropped")
    follower = _Follower(agent, pid)
    wait_for(lambda: agent.client().call("GET", f"/v1/programs/{pid}")["readers"] == 1,
             timeout=30, what="the follower to be subscribed")
    _trigger(3, start=10)
    wait_for(lambda: len(follower.events) == 3, timeout=30, what="the follower's events")
    agent.client().call("DELETE", f"/v1/programs/{pid}")
    follower.thread.join(10)
    assert agent.client().call("GET", "/healthz")["status"] == "ok"


def test_hot_swap_attaches_the_new_version_before_detaching_the_old(
        agent: Agent, published: Callable[..., str]) -> None:
    old_ref, new_ref = published("svcprobe"), published("svcprobe", "2.0.0")
    pid = agent.start(old_ref, "--pid", str(ME), "--tag", "1")["id"]
    follower = _Follower(agent, pid)
    wait_for(lambda: agent.client().call("GET", f"/v1/programs/{pid}")["readers"] == 1)
    stop = threading.Event()
    sent = []

    def trigger() -> None:  # paced, so that the reader itself never falls behind
        seq = 1
        while not stop.wait(0.0005):
            _trigger(1, seq)
            sent.append(seq)
            seq += 1

    t = threading.Thread(target=trigger)
    t.start()
    try:
        wait_for(lambda: len(follower.events) > 100)
        swapped = agent.client().call("PUT", f"/v1/programs/{pid}", {
            "ref": new_ref, "args": ["--pid", str(ME), "--tag", "2"], "allow_unsigned": True})
        assert swapped["version"] == "2.0.0" and swapped["swaps"] == 1
        n = len(follower.events)
        wait_for(lambda: len(follower.events) > n + 100)
    finally:
        stop.set()
        t.join()
    wait_for(lambda: max((e["arg"] for e in follower.events), default=0) >= sent[-1])
    args = {e["arg"] for e in follower.events}
    first = follower.events[0]["arg"]
    assert not [r for r in follower.records if "_ebpm" in r]  # the reader lost nothing
    assert set(range(first, sent[-1] + 1)) <= args  # not one call missed across the swap
    tags = [e["tag"] for e in follower.events]
    assert tags[0] == 1 and tags[-1] == 2 and 2 in tags and 1 in tags
    last_old = max(e["arg"] for e in follower.events if e["tag"] == 1)
    first_new = min(e["arg"] for e in follower.events if e["tag"] == 2)
    assert first_new <= last_old + 1  # overlap (both attached) or seamless
    listing = agent.client().call("GET", "/v1/programs")["programs"]
    assert [p["ref"] for p in listing] == [new_ref]
    assert len(held_ids(agent.process.pid)["prog"]) == 1  # the old version is unloaded
    agent.client().call("DELETE", f"/v1/programs/{pid}")


def test_sigterm_unloads_every_program(tmp_path: Path, published: Callable[..., str]) -> None:
    require_bpf()
    agent = start_agent(tmp_path)
    try:
        for tag in ("1", "2", "3"):
            agent.start(published("svcprobe"), "--pid", str(ME), "--tag", tag)
        first = agent.client().call("GET", "/v1/programs")["programs"][0]["id"]
        follower = _Follower(agent, first)
        held = held_ids(agent.process.pid)
        assert len(held["prog"]) == 3 and len(held["link"]) == 3
        assert agent.stop() == 0, agent.output()  # a reader still connected does not hold it up
        follower.thread.join(10)
        wait_for(lambda: _gone(held), what="every program, link and map unloaded")
        assert not agent.socket.exists()
    finally:
        agent.stop()


def test_cli_ps_logs_stop(agent: Agent, published: Callable[..., str],
                          capsys: pytest.CaptureFixture[str]) -> None:
    ref = published("svcprobe")
    pid = agent.start(ref, "--pid", str(ME), "--tag", "9")["id"]
    _trigger(3, start=21)
    wait_for(lambda: agent.client().call("GET", f"/v1/programs/{pid}")["events"] == 3)
    at = ("--agent", str(agent.socket))
    r = ebpm(capsys, "ps", *at)
    assert r.code == 0, r.err
    header, row = r.out.splitlines()
    assert header.split() == ["ID", "REF", "STATUS", "EVENTS", "LOST", "UP", "ATTACHED"]
    assert row.split()[:5] == [pid, ref, "running", "3", "0"]
    r = ebpm(capsys, "ps", "--json", *at)
    assert json.loads(r.out)[0]["id"] == pid
    r = ebpm(capsys, "logs", pid, "--json", *at)
    assert [json.loads(ln)["arg"] for ln in r.out.splitlines()] == [21, 22, 23]
    r = ebpm(capsys, "logs", pid[:5], "--tail", "1", *at)
    assert r.code == 0 and r.out.splitlines()[0].split()[:2] == ["PID", "TAG"]
    assert r.out.splitlines()[1].split()[:3] == [str(ME), "9", "23"]
    r = ebpm(capsys, "stop", pid, *at)
    assert r.code == 0 and r.out.startswith(f"stopped {pid} ({ref}, 3 events)")
    r = ebpm(capsys, "stop", pid, *at)
    assert r.code == 1 and "no such program" in r.err
    r = ebpm(capsys, "logs", pid[:2], *at)  # (the prefix of no program: too short all the same)
    assert r.code == 2 and "id prefix too short (at least 3 characters)" in r.err, r.err

    # many ids: every valid one is stopped, the wrong ones reported together at the end
    first, second = (agent.start(ref, "--pid", str(ME))["id"] for _ in range(2))
    r = ebpm(capsys, "stop", first[:4], "nosuch", second, "ab", *at)
    assert r.code == 1, r.err
    assert r.out.splitlines() == [f"stopped {first} ({ref}, 0 events)",
                                  f"stopped {second} ({ref}, 0 events)"]
    assert r.err.splitlines()[0] == (
        "error: 2 of 4 programs not stopped: program nosuch: no such program; "
        "program ab: id prefix too short (at least 3 characters)")
    assert agent.client().call("GET", "/v1/programs")["programs"] == []


def test_cli_logs_of_a_program_without_events_prints_its_maps(
        agent: Agent, published: Callable[..., str], capsys: pytest.CaptureFixture[str]) -> None:
    """`ebpm logs ID` of a package with result maps only (a histogram): its maps, not silence."""
    require_bpf()
    pid = agent.start(published("histprobe"), "--pid", str(ME))["id"]
    try:
        for _ in range(5):
            try:
                os.getpgid(1000)  # slot 9: 512 -> 1023
            except ProcessLookupError:
                pass
        at = ("--agent", str(agent.socket))
        r = ebpm(capsys, "logs", pid, *at)
        assert r.code == 0, r.err
        assert "512 -> 1023" in r.out and ": 5 " in r.out, r.out
        assert f"ebpm: {pid} has no event stream; these are its result maps" in r.err
        r = ebpm(capsys, "logs", pid, "--json", *at)
        (doc,) = [json.loads(line) for line in r.out.splitlines()]
        assert doc["map"] == "hists" and doc["rows"][0]["value"]["slots"][9] == 5
    finally:
        agent.client().call("DELETE", f"/v1/programs/{pid}")
