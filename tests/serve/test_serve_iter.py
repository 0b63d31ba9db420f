"""Iterator programs (SEC("iter/...")) in the agent: kept attached and run anew on each read of
`GET /v1/programs/ID/output` (NDJSON lines, within the agent's byte and time caps), printed by
`ebpm run --agent` as a standalone run prints them, and by `ebpm logs ID`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.bpfobjects import alive_ids, held_ids
from tests.cli import ebpm
from tests.serve.conftest import Agent, ask, require_bpf, start_agent, wait_for
from tests.serve.test_serve_persist import _stop_all

pytestmark = [pytest.mark.kernel, pytest.mark.registry]
ME = os.getpid()
PROG = "iterprobe_pids"


def _output(agent: Agent, pid: str, query: str = "") -> tuple[list[dict[str, Any]],
                                                               dict[str, Any]]:
    """The line records and the end record of one read."""
    *lines, end = agent.client().stream(f"/v1/programs/{pid}/output{query}")
    assert end["_ebpm"] == "end" and all("_ebpm" not in rec for rec in lines)
    return lines, end


def test_the_agent_runs_an_iterator_anew_on_each_read(
        agent: Agent, published: Callable[..., str]) -> None:
    """The iterator stays attached (the program runs, no event stream), and each read of its
    output runs it again, as `cat` of a pinned iterator does: a process started between two
    reads is in the second; every record is `ebpm run --json`'s, the end gives the bytes."""
    require_bpf()
    prog = agent.start(published("iterprobe"))
    pid = prog["id"]
    try:
        assert prog["status"] == "running" and prog["iterators"] == [PROG]
        assert prog["streams"] == [] and prog["results"] == []
        assert prog["attached"] == [f"{PROG} -> iter/task"]
        lines, end = _output(agent, pid)
        assert {"iter": PROG, "line": f"pid {ME}"} in lines
        assert end["truncated"] is None and "error" not in end
        assert end["output"] == {PROG: sum(len(r["line"]) + 1 for r in lines)}
        child = subprocess.Popen(["sleep", "60"])
        try:
            again, _ = _output(agent, pid)
        finally:
            child.kill()
            child.wait()
        assert {"iter": PROG, "line": f"pid {child.pid}"} in again
        assert {"iter": PROG, "line": f"pid {child.pid}"} not in lines
        held = held_ids(agent.process.pid)  # its program and link; no iterator left open
        assert len(held["prog"]) == 1 and len(held["link"]) == 1
        status = agent.client().call("GET", f"/v1/programs/{pid}")["status"]
        assert status == "running"
    finally:
        agent.client().call("DELETE", f"/v1/programs/{pid}")
    assert not (held["prog"] & alive_ids("prog")) and not (held["link"] & alive_ids("link"))


def test_an_iterators_output_read_whole_or_cut_at_a_limit(
        agent: Agent, published: Callable[..., str]) -> None:
    """A big output (512 lines a process) comes whole, streamed; ?limit=BYTES cuts it there and
    the end record says so ("truncated": "limit"), the cut line marked partial; a limit over
    the agent's cap and a program without an iterator are refused with a hint."""
    require_bpf()
    pid = agent.start(published("iterprobe"), "--lines", "512")["id"]
    try:
        lines, end = _output(agent, pid)
        mine = [r["line"] for r in lines if r["line"].startswith(f"pid {ME} ")]
        assert mine == [f"pid {ME} line {i}" for i in range(512)]
        size = sum(len(r["line"]) + 1 for r in lines)
        assert size > 256 << 10 and end["output"] == {PROG: size}, end
        assert end["truncated"] is None

        cut, end = _output(agent, pid, "?limit=1000")
        assert end["truncated"] == "limit" and end["output"] == {PROG: 1000}
        text = "".join(r["line"] + ("" if r.get("partial") else "\n") for r in cut)
        assert len(text) == 1000 and cut[-1].get("partial") and cut[0]["line"].startswith("pid")

        from ebpm.errors import NotFoundError, UsageError

        with pytest.raises(UsageError, match="query parameter limit: at most 16777216 bytes"):
            _output(agent, pid, "?limit=99999999999")
    finally:
        agent.client().call("DELETE", f"/v1/programs/{pid}")
    other = agent.start(published("histprobe"))["id"]
    try:
        with pytest.raises(NotFoundError, match="histprobe has no iterator program") as info:
            _output(agent, other)
        assert f"GET /v1/programs/{other}/events" in (info.value.hint or "")
    finally:
        agent.client().call("DELETE", f"/v1/programs/{other}")


def test_binary_output_comes_through_byte_for_byte(
        agent: Agent, published: Callable[..., str]) -> None:
    """An iterator writing binary records (bpf_seq_write, not UTF-8): each line record has its
    text with the bad bytes replaced and its exact bytes in "bytes" (base64), so that a
    client (`ebpm run --agent`, ebpm's AgentClient.output) puts back exactly what was written."""
    require_bpf()
    from ebpm.run.lines import record_bytes

    pid = agent.start(published("iterprobe"), "--binary")["id"]
    try:
        lines, end = _output(agent, pid)
        data = b"".join(record_bytes(r) for r in lines)
        assert len(data) == end["output"][PROG] and len(data) % 8 == 0, end
        records = [data[i:i + 8] for i in range(0, len(data), 8)]
        assert all(r[4:] == b"\xff\xfe\x00\n" for r in records), records[:4]
        assert ME.to_bytes(4, "little") + b"\xff\xfe\x00\n" in records
        mine = next(r for r in lines if r.get("bytes") and record_bytes(r).startswith(
            ME.to_bytes(4, "little")))
        assert "\ufffd" in mine["line"]  # (the text, for people and jq: replaced)
        taken: list[bytes] = []
        agent.client().output(pid, lambda program, chunk: taken.append(chunk))
        assert len(b"".join(taken)) % 8 == 0
        assert ME.to_bytes(4, "little") + b"\xff\xfe\x00\n" in b"".join(taken)
    finally:
        agent.client().call("DELETE", f"/v1/programs/{pid}")


def test_output_reads_at_once_are_capped(tmp_path: Path, published: Callable[..., str]) -> None:
    """Each read of .../output holds the kernel's iterators and a worker thread while it runs:
    the agent runs at most --max-output-reads at once, one more is answered 503 with
    Retry-After and a hint, and a read's place is given back when it ends (its client gone)."""
    require_bpf()
    # more processes, so that one read's output (512 lines each) is far more than the
    # sockets buffer: a read whose client does not read stays under way
    sleepers = [subprocess.Popen(["sleep", "300"]) for _ in range(64)]
    agent = start_agent(tmp_path, "--max-output-reads", "2")
    held: list[socket.socket] = []
    try:
        pid = agent.start(published("iterprobe"), "--lines", "512")["id"]
        assert _output(agent, pid)[1]["output"][PROG] > 1 << 20
        for _ in range(2):
            s, status, _, _ = ask(agent, f"/v1/programs/{pid}/output")
            held.append(s)
            assert status == 200
        s, status, headers, body = ask(agent, f"/v1/programs/{pid}/output")
        s.close()
        assert status == 503 and headers["retry-after"] == "1", headers
        doc = json.loads(body)
        assert doc["error"] == "output reads under way in the agent: 2, the most it runs at once"
        assert doc["hint"] == ("try again in 1 s (Retry-After); the agent's --max-output-reads "
                               "sets the cap")
        for s in held:  # the clients go away: their reads end, and give their places back
            s.close()
        held = []

        def two_again() -> bool:
            s, status, _, _ = ask(agent, f"/v1/programs/{pid}/output")
            if status != 200:
                s.close()
                return False
            held.append(s)
            return len(held) == 2

        wait_for(two_again, timeout=30, interval=0.1, what="both places given back")
        s, status, _, _ = ask(agent, f"/v1/programs/{pid}/output")  # and no more than those
        s.close()
        assert status == 503
        for s in held:
            s.close()
        agent.client().call("DELETE", f"/v1/programs/{pid}")
    finally:
        for s in held:
            s.close()
        for proc in sleepers:
            proc.kill()
            proc.wait()
        assert agent.stop() == 0, agent.output()


def test_a_client_that_stops_reading_is_dropped(tmp_path: Path,
                                                 published: Callable[..., str]) -> None:
    """A client that takes none of its output read for --send-timeout seconds, its socket
    still open, is dropped: its place under --max-output-reads (and the kernel's iterators)
    come back, and the agent says so in one line of its log, with no traceback."""
    require_bpf()
    sleepers = [subprocess.Popen(["sleep", "300"]) for _ in range(64)]  # (a long output)
    agent = start_agent(tmp_path, "--max-output-reads", "1", "--send-timeout", "1")
    held: list[socket.socket] = []
    try:
        pid = agent.start(published("iterprobe"), "--lines", "512")["id"]
        s, status, _, _ = ask(agent, f"/v1/programs/{pid}/output")  # read no further
        held.append(s)
        assert status == 200

        def taken_again() -> bool:
            s, status, _, _ = ask(agent, f"/v1/programs/{pid}/output")
            held.append(s)
            return status == 200

        wait_for(taken_again, timeout=30, interval=0.2, what="the stalled client's place")
        log = agent.output()
        assert (f"dropped a client of GET /v1/programs/{pid}/output: it took none of the "
                "answer for 1 s (ebpm serve --send-timeout)") in log, log
        assert "Traceback" not in log and "Exception in ASGI" not in log, log
        for s in held:
            s.close()
        agent.client().call("DELETE", f"/v1/programs/{pid}")
    finally:
        for s in held:
            s.close()
        for proc in sleepers:
            proc.kill()
            proc.wait()
        assert agent.stop() == 0, agent.output()


@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_attached_run_prints_the_iterators_output_and_ends(
        agent: Agent, published: Callable[..., str], capsys: pytest.CaptureFixture[str],
        as_json: bool) -> None:
    """`ebpm run --agent ADDRESS REF` of an iterator package prints what it wrote as a
    standalone run does (raw text; --json: one {"iter", "line"} record per line), then ends
    (stopped: iterated), and nothing of it is left in the agent."""
    require_bpf()
    ref = published("iterprobe")
    at = ("--agent", str(agent.socket))
    r = ebpm(capsys, "run", "--allow-unsigned", *at, ref, "--duration", "30",
             *(("--json",) if as_json else ()))
    assert r.code == 0, r.err
    assert agent.client().call("GET", "/v1/programs")["programs"] == []
    if as_json:
        records = [json.loads(line) for line in r.out.splitlines()]
        start, *lines, summary = records
        assert start["ebpm"] == "start" and start["iterators"] == [PROG] and start["id"]
        assert {"iter": PROG, "line": f"pid {ME}"} in lines
        assert all(set(rec) == {"iter", "line"} for rec in lines)
        assert summary["stopped_by"] == "iterated"
        assert summary["output"] == {PROG: sum(len(rec["line"]) + 1 for rec in lines)}
    else:
        assert f"pid {ME}" in r.out.splitlines()
        assert f"attached {PROG} (iter/task); the output of {PROG}; stops once read" in r.err
        assert f"{PROG}: {len(r.out.encode())} bytes written" in r.err
        assert "(stopped: iterated)" in r.err.splitlines()[-1]


def test_cli_logs_of_an_iterator_runs_it_anew(
        agent: Agent, published: Callable[..., str], capsys: pytest.CaptureFixture[str]) -> None:
    """`ebpm logs ID` of an iterator program prints what it writes now (not silence)."""
    require_bpf()
    pid = agent.start(published("iterprobe"))["id"]
    try:
        at = ("--agent", str(agent.socket))
        r = ebpm(capsys, "logs", pid, *at)
        assert r.code == 0, r.err
        assert f"pid {ME}" in r.out.splitlines()
        r = ebpm(capsys, "logs", pid, "--json", "-f", *at)
        assert r.code == 0, r.err
        assert {"iter": PROG, "line": f"pid {ME}"} in [json.loads(ln) for ln in
                                                       r.out.splitlines()]
        assert f"`ebpm logs {pid}` again runs it anew" in r.err
    finally:
        agent.client().call("DELETE", f"/v1/programs/{pid}")


def test_a_persisted_iterator_is_read_after_the_agent_restarts(
        tmp_path: Path, published: Callable[..., str]) -> None:
    """An iterator started with persist stays pinned when the agent exits; the agent that
    adopts it runs it through its pinned link, and stopping it removes the pins."""
    require_bpf()
    first = start_agent(tmp_path)
    second = None
    try:
        kept = first.start(published("iterprobe"), persist=True)
        assert first.stop() == 0, first.output()
        second = start_agent(tmp_path, pins=first.pins, state=first.state)
        prog = second.client().call("GET", f"/v1/programs/{kept['id']}")
        assert prog["adopted"] and prog["iterators"] == [PROG]
        lines, end = _output(second, kept["id"])
        assert {"iter": PROG, "line": f"pid {ME}"} in lines and end["truncated"] is None
        second.client().call("DELETE", f"/v1/programs/{kept['id']}")
        assert not any(first.pins.iterdir()) if first.pins.exists() else True
    finally:
        _stop_all(first.pins, first, second)


def test_long_lines_come_in_pieces_that_add_up() -> None:
    """A line over LINE_MAX (bpf_seq_write of a blob without newlines) is cut into partial
    records, never inside a UTF-8 character, and the pieces give back the bytes: the agent's
    records and `ebpm run --json`'s are the same (ebpm.run.lines; the standalone printer held
    a whole unfinished line, however long)."""
    import io

    from ebpm.cli.printers import JsonPrinter
    from ebpm.run.lines import LINE_MAX

    data = ("é" * LINE_MAX).encode() + b"\nshort\ntail"
    out = io.StringIO()
    printer = JsonPrinter(out)
    printer.output("p", data[:70000])
    assert len(printer._lines["p"].held) <= LINE_MAX  # (what it holds is bounded)
    printer.output("p", data[70000:])
    printer.flush()
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert all(len(r["line"].encode()) <= LINE_MAX for r in records)
    assert "\ufffd" not in "".join(r["line"] for r in records)
    assert "".join(r["line"] + ("" if r.get("partial") else "\n")
                   for r in records).encode() == data
    assert records[-2:] == [{"iter": "p", "line": "short"},
                            {"iter": "p", "line": "tail", "partial": True}]


def test_binary_lines_keep_their_bytes_in_run_json() -> None:
    """`ebpm run --json` of binary output (no UTF-8): each record that is not UTF-8 carries its
    exact bytes (base64), and the records give back every byte, pieces of a long one too."""
    import io

    from ebpm.cli.printers import JsonPrinter
    from ebpm.run.lines import LINE_MAX, record_bytes

    data = b"\xff\xfe\x00\n" + bytes(range(256)) * (LINE_MAX // 128) + b"\nok\n\x80"
    out = io.StringIO()
    printer = JsonPrinter(out)
    printer.output("p", data)
    printer.flush()
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert b"".join(record_bytes(r) for r in records) == data
    assert records[0]["line"] == "\ufffd\ufffd\x00" and "bytes" in records[0]
    assert {"iter": "p", "line": "ok"} in records  # (text stays as it was: no "bytes")
    assert records[-1]["partial"] and records[-1]["bytes"] == "gA=="
