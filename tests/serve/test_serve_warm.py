"""The agent's warm cache: a stopped program stays loaded, detached; starting the same package
with the same flags again only attaches it, with its maps emptied; nothing stays loaded after
the agent stops."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.bpfobjects import alive_ids, held_ids
from tests.serve.conftest import require_bpf, start_agent, wait_for

pytestmark = [pytest.mark.kernel, pytest.mark.registry]
ME = os.getpid()


def _trigger(args: range) -> None:
    for i in args:
        try:
            os.getpgid(i)
        except OSError:
            pass  # ESRCH: the call was still made (and traced)


def test_a_stopped_program_starts_again_from_the_warm_cache(
        tmp_path: Path, published: Callable[..., str]) -> None:
    require_bpf()
    ref = published("svcprobe")
    agent = start_agent(tmp_path, "--warm", "2")
    seen: dict[str, set[int]] = {"prog": set(), "link": set(), "map": set()}
    try:
        client = agent.client()

        def run(tag: str, calls: range) -> dict:  # type: ignore[type-arg]
            prog = agent.start(ref, "--pid", str(ME), "--tag", tag)
            for kind, ids in held_ids(agent.process.pid).items():
                seen[kind] |= ids
            _trigger(calls)
            wait_for(lambda: client.call("GET", f"/v1/programs/{prog['id']}")["events"]
                     >= len(calls))
            query = "follow=false&tail=all"
            events = [e for e in client.stream(f"/v1/programs/{prog['id']}/events?{query}")
                      if "_ebpm" not in e]
            maps = {m["map"]: m for m in
                    client.call("GET", f"/v1/programs/{prog['id']}/maps")["maps"]}
            client.call("DELETE", f"/v1/programs/{prog['id']}")
            return {"prog": prog, "events": events, "maps": maps}

        first = run("1", range(1, 4))
        assert first["prog"]["warm_start"] is False
        held = held_ids(agent.process.pid)  # stopped: detached, still loaded
        assert not held["link"] and len(held["prog"]) == 1

        again = run("1", range(10, 12))
        assert again["prog"]["warm_start"] is True  # attached, not loaded again
        assert [e["arg"] for e in again["events"]] == [10, 11]  # nothing of the first run
        (row,) = again["maps"]["call_counts"]["rows"]  # emptied, then counted afresh
        assert row["value"] == 2
        (hist,) = again["maps"]["hist"]["rows"]
        assert sum(b["count"] for b in hist["buckets"]) == 2
        assert held_ids(agent.process.pid)["prog"] == held["prog"]  # the same program

        other = run("2", range(20, 21))  # other flags: other .rodata, loaded anew
        assert other["prog"]["warm_start"] is False
        assert [e["tag"] for e in other["events"]] == [2]
        assert len(held_ids(agent.process.pid)["prog"]) == 2  # both kept (--warm 2)
        assert not held_ids(agent.process.pid)["link"]
    finally:
        code = agent.stop()
    assert code == 0, agent.output()
    assert seen["prog"] and seen["link"]
    wait_for(lambda: all(not (seen[k] & alive_ids(k)) for k in seen),
             what="every program, link and map of the agent to go with it")
