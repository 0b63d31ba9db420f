"""The agent's caps on long answers under way at once (ebpm.serve.slots): event streams here
(`--max-streams`; the output reads' cap is tested with iterators, test_serve_iter.py). Each
stream holds a reader of up to --reader-buffer events in the agent: one more over the cap is
answered 503 at once, and a place comes back when its client goes (real agent and kernel)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

from tests.serve.conftest import ask, require_bpf, start_agent, wait_for


def test_event_streams_at_once_are_capped(tmp_path: Path, published: Callable[..., str]) -> None:
    require_bpf()
    agent = start_agent(tmp_path, "--max-streams", "2")
    held: list[socket.socket] = []
    try:
        pid = agent.start(published("histprobe"))["id"]
        follow = f"/v1/programs/{pid}/events?follow=true&format=ndjson"
        for _ in range(2):  # two followers, whose clients read nothing
            s, status, _, _ = ask(agent, follow)
            held.append(s)
            assert status == 200
        s, status, headers, body = ask(agent, follow)
        s.close()
        assert (status, headers["retry-after"]) == (503, "1"), headers
        assert json.loads(body) == {
            "error": "event streams under way in the agent: 2, the most it runs at once",
            "hint": "try again in 1 s (Retry-After); the agent's --max-streams sets the cap"}
        assert agent.client().call("GET", f"/v1/programs/{pid}")["readers"] == 2  # (not 3)

        held.pop().close()  # a client goes: its place comes back, and only its

        def one_again() -> bool:
            s, status, _, _ = ask(agent, follow)
            if status != 200:
                s.close()
                return False
            held.append(s)
            return True

        wait_for(one_again, timeout=30, interval=0.1, what="the place given back")
        s, status, _, _ = ask(agent, follow)
        s.close()
        assert status == 503
        for s in held:
            s.close()
        agent.client().call("DELETE", f"/v1/programs/{pid}")
    finally:
        for s in held:
            s.close()
        agent.stop()


def test_a_client_waits_for_a_place_as_retry_after_says(
        tmp_path: Path, published: Callable[..., str]) -> None:
    """`ebpm logs -f` at an agent whose streams are all taken is answered 503 with Retry-After:
    it waits as told and asks again (at most ebpm.serve.client.BUSY_WAIT seconds in all), and
    follows once a place is free (it failed at once with the 503)."""
    import os
    import subprocess

    from tests.serve.conftest import EBPM, terminate

    require_bpf()
    agent = start_agent(tmp_path, "--max-streams", "1")
    held: list[socket.socket] = []
    logs = None
    try:
        pid = agent.start(published("svcprobe"))["id"]  # (an event stream)
        s, status, _, _ = ask(agent, f"/v1/programs/{pid}/events?follow=true&format=ndjson")
        held.append(s)
        assert status == 200
        logs = subprocess.Popen([EBPM, "logs", "-f", pid],
                                env=dict(os.environ, EBPM_AGENT=str(agent.socket)),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def waiting() -> bool:  # refused, and sleeping the Retry-After out
            assert logs is not None and logs.poll() is None, logs.communicate()
            return Path(f"/proc/{logs.pid}/wchan").read_text() == "hrtimer_nanosleep"

        wait_for(waiting, timeout=30, interval=0.02, what="ebpm logs -f waiting to ask again")
        held.pop().close()  # a place comes free: it follows, until the program is stopped
        wait_for(lambda: agent.client().call("GET", f"/v1/programs/{pid}")["readers"] == 1,
                 timeout=30, what="ebpm logs -f following")
        agent.client().call("DELETE", f"/v1/programs/{pid}")
        out, err = logs.communicate(timeout=30)
        assert logs.returncode == 0, err
        assert "HTTP 503" not in err
    finally:
        for s in held:
            s.close()
        if logs is not None:
            terminate(logs)
        agent.stop()
