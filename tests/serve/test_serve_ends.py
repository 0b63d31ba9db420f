"""A run that ends by itself in the agent (its WebAssembly guest exits or traps) ends the
streams that follow it, their end record saying how; `ebpm run --agent` then ends as a
standalone run of it does (the guest's exit status, or the error), and `ebpm logs -f` ends."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable
from typing import Any

import pytest

from tests.bpfobjects import held_ids
from tests.serve.conftest import EBPM, Agent, terminate, wait_for

pytestmark = [pytest.mark.kernel, pytest.mark.registry]
ME = os.getpid()


def _exec() -> None:
    subprocess.run(["/bin/true"], check=True)  # an exec of this process's child: an event


class _Following:
    """`GET .../events?follow=true` read to its end in a thread."""

    def __init__(self, agent: Agent, pid: str) -> None:
        self.records: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self._read, args=(agent, pid), daemon=True)
        self.thread.start()

    def _read(self, agent: Agent, pid: str) -> None:
        for record in agent.client().stream(f"/v1/programs/{pid}/events?follow=true&tail=all"):
            self.records.append(record)

    def ended(self) -> bool:
        return not self.thread.is_alive()


def _until_done(done: Callable[[], bool], what: str) -> None:
    """Execs until `done()` (each exec is an event of the guests here)."""
    def check() -> bool:
        _exec()
        return done()

    wait_for(check, timeout=30, interval=0.2, what=what)


def test_a_guest_that_exits_ends_its_streams_and_the_attached_run(
        agent: Agent, published: Callable[..., str]) -> None:
    ref = published("wasm-execsnoop", "0.1.0")  # its guest exits after --max-events N
    args = ["--ppid", str(ME), "--max-events", "1"]
    guest = agent.start(ref, *args)
    following = _Following(agent, guest["id"])
    logs = subprocess.Popen([EBPM, "logs", "-f", "--agent", str(agent.socket), guest["id"]],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _until_done(lambda: following.ended() and logs.poll() is not None,
                    "the streams to end with the guest")
    finally:
        if not following.ended():  # (the bug: the stream stays open) end it for the thread
            agent.client().call("DELETE", f"/v1/programs/{guest['id']}")
        terminate(logs)
    lines = [r["line"] for r in following.records if "line" in r]
    assert lines[0] == "READY" and lines[1].startswith("EXEC pid="), lines
    assert following.records[-1] == {"_ebpm": "end", "delivered": len(lines), "lost": 0,
                                     "status": "exited", "exit_status": 0}
    out, err = logs.communicate()
    assert logs.returncode == 0 and "EXEC pid=" in out, err
    assert err.strip().endswith(f"ebpm: {guest['id']} exited with status 0"), err
    # what a stream opened afterwards says, too
    (end,) = [r for r in agent.client().stream(f"/v1/programs/{guest['id']}/events")
              if "_ebpm" in r]
    assert end["status"] == "exited" and end["exit_status"] == 0
    assert agent.client().call("GET", f"/v1/programs/{guest['id']}")["status"] == "exited"
    agent.client().call("DELETE", f"/v1/programs/{guest['id']}")

    run = subprocess.Popen([EBPM, "run", "--agent", str(agent.socket), "--allow-unsigned", ref,
                            "--", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    try:
        wait_for(lambda: agent.client().call("GET", "/v1/programs")["programs"],
                 timeout=30, what="the attached run's program in the agent")
        _until_done(lambda: run.poll() is not None, "ebpm run --agent to end with the guest")
    finally:
        terminate(run)
    out, err = run.communicate()
    assert run.returncode == 0, err
    assert "EXEC pid=" in out
    assert "ebpm: execsnoop: exited with status 0 after" in err, err  # as a standalone run
    assert agent.client().call("GET", "/v1/programs")["programs"] == []
    wait_for(lambda: not held_ids(agent.process.pid)["prog"], what="everything unloaded")


def test_a_guest_that_traps_ends_the_attached_run_with_its_error(
        agent: Agent, published: Callable[..., str]) -> None:
    ref = published("wasmtrap", "0.1.0")  # traps in its first event callback
    guest = agent.start(ref)
    following = _Following(agent, guest["id"])
    try:
        _until_done(following.ended, "the stream to end with the guest")
    finally:
        if not following.ended():
            agent.client().call("DELETE", f"/v1/programs/{guest['id']}")
    end = following.records[-1]
    assert end["_ebpm"] == "end" and end["status"] == "failed", end
    assert "trapped" in end["error"] and end["hint"] and "exit_status" not in end
    agent.client().call("DELETE", f"/v1/programs/{guest['id']}")

    run = subprocess.Popen([EBPM, "run", "--agent", str(agent.socket), "--allow-unsigned", ref],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: agent.client().call("GET", "/v1/programs")["programs"],
                 timeout=30, what="the attached run's program in the agent")
        _until_done(lambda: run.poll() is not None, "ebpm run --agent to end with the trap")
    finally:
        terminate(run)
    out, err = run.communicate()
    assert run.returncode == 1, err
    # the one-line error and its hint, as a standalone run of it prints them
    assert err.splitlines()[-2].startswith("error: wasm guest execsnoop: trapped: "), err
    assert err.splitlines()[-1] == "hint: the guest crashed; its BPF objects were closed"
    assert "unexpected" not in err
    assert agent.client().call("GET", "/v1/programs")["programs"] == []
    wait_for(lambda: not held_ids(agent.process.pid)["prog"], what="everything unloaded")
