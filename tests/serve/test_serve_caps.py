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
            "error": "the agent has 2 event streams under way, the most it runs at once",
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
