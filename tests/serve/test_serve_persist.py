"""Programs that outlive the agent: pinned under the agent's bpffs directory, left attached at
SIGTERM (while the others are unloaded), adopted after a restart, unpinned when stopped."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.bpfobjects import alive_ids, held_ids
from tests.serve.conftest import Agent, require_bpf, start_agent, wait_for

pytestmark = [pytest.mark.kernel, pytest.mark.registry]
ME = os.getpid()


def _link_ids(pins: Path) -> set[int]:
    from ebpm.loader import libbpf

    out = set()
    for pin in pins.rglob("link-*"):
        fd = libbpf.obj_get(str(pin))
        try:
            info = Path(f"/proc/self/fdinfo/{fd}").read_text()
        finally:
            os.close(fd)
        out.add(int(next(ln for ln in info.splitlines() if ln.startswith("link_id:")).split()[1]))
    return out


def _stop_all(pins: Path, *agents: Agent | None) -> None:
    """Stop the agents, then remove what they left pinned (a failed test's programs too)."""
    for agent in agents:
        if agent is not None:
            agent.stop()
    from ebpm.loader.pins import remove_pins

    for d in pins.glob("*") if pins.exists() else ():
        remove_pins(d)
    shutil.rmtree(pins, ignore_errors=True)


def test_persisted_program_survives_a_restart_and_is_adopted(
        tmp_path: Path, published: Callable[..., str]) -> None:
    require_bpf()
    ref = published("svcprobe")
    first = start_agent(tmp_path)
    pins, state = first.pins, first.state
    second = None
    try:
        kept = first.start(ref, "--pid", str(ME), "--tag", "5", persist=True)
        gone = first.start(ref, "--pid", str(ME), "--tag", "6")
        assert kept["persist"] and not gone["persist"]
        (pin_dir,) = [p for p in pins.iterdir()]
        assert sorted(p.name for p in pin_dir.iterdir()) == [
            "link-handle_getpgid", "map-call_counts", "map-events", "map-hist"]
        links = _link_ids(pins)
        held = held_ids(first.process.pid)
        os.getpgid(0)
        wait_for(lambda: first.client().call("GET", f"/v1/programs/{kept['id']}")["events"])
        assert first.stop() == 0, first.output()

        assert links <= alive_ids("link")  # still attached, held by its pins alone
        non_persistent = held["prog"] - {p for p in held["prog"] if p in alive_ids("prog")}
        assert non_persistent  # the other program was unloaded at SIGTERM
        assert len(held["prog"] & alive_ids("prog")) == 1
        for i in range(1, 4):
            os.getpgid(i)  # counted and queued while no agent runs
        record = json.loads((state / "programs.json").read_text())
        assert [p["id"] for p in record["programs"]] == [kept["id"]]

        second = start_agent(tmp_path, pins=pins, state=state)
        assert f"adopted 1 pinned program(s): {kept['id']}" in second.output()
        (prog,) = second.client().call("GET", "/v1/programs")["programs"]
        assert prog["id"] == kept["id"] and prog["adopted"] and prog["persist"]
        assert prog["ref"] == ref and prog["digest"] == kept["digest"]
        maps = {m["map"]: m for m in second.client().call(
            "GET", f"/v1/programs/{kept['id']}/maps")["maps"]}
        assert maps["call_counts"]["rows"][0]["value"] == 4  # one before, three while down
        wait_for(lambda: second.client().call(
            "GET", f"/v1/programs/{kept['id']}")["events"] >= 3, what="queued events")
        events = list(second.client().stream(
            f"/v1/programs/{kept['id']}/events?follow=false&tail=all"))
        assert [e["arg"] for e in events if "_ebpm" not in e] == [1, 2, 3]  # from the ring
        assert all(e["tag"] == 5 for e in events if "_ebpm" not in e)
        assert not held_ids(second.process.pid)["prog"]  # adopted, not loaded again

        second.client().call("DELETE", f"/v1/programs/{kept['id']}")
        assert not pin_dir.exists()
        wait_for(lambda: not (links & alive_ids("link")), what="the link to go with its pins")
        assert json.loads((state / "programs.json").read_text())["programs"] == []
    finally:
        _stop_all(pins, first, second)


def test_pins_gone_while_down_are_forgotten(tmp_path: Path,
                                            published: Callable[..., str]) -> None:
    require_bpf()
    first = start_agent(tmp_path)
    try:
        kept = first.start(published("svcprobe"), "--pid", str(ME), persist=True)
        assert first.stop() == 0
        from ebpm.loader.pins import remove_pins

        for d in first.pins.iterdir():
            remove_pins(d)  # someone removed them by hand
        second = start_agent(tmp_path, pins=first.pins, state=first.state)
        try:
            assert second.client().call("GET", "/v1/programs") == {"programs": []}
            assert f"could not adopt {kept['id']}" in second.output()
        finally:
            assert second.stop() == 0
    finally:
        first.stop()
        shutil.rmtree(first.pins, ignore_errors=True)


def test_adopted_program_prints_again(tmp_path: Path, published: Callable[..., str]) -> None:
    """A pinned program calling bpf_printk keeps its lines coming after a restart: the agent
    that adopts it opens its own trace instance (the first agent's went with it)."""
    require_bpf()
    ref = published("printkprobe")
    first = start_agent(tmp_path)
    pins, state = first.pins, first.state
    second = None
    try:
        kept = first.start(ref, "--pid", str(ME), persist=True)
        assert first.stop() == 0, first.output()
        second = start_agent(tmp_path, pins=pins, state=state)
        assert f"adopted 1 pinned program(s): {kept['id']}" in second.output()
        url = f"/v1/programs/{kept['id']}"

        def printed() -> list[str]:
            os.getpgid(ME)
            return [e.get("bpf_printk") for e in second.client().stream(
                f"{url}/events?follow=false&tail=all") if "_ebpm" not in e]

        wait_for(lambda: f"getpgid {ME}" in printed(), what="a bpf_printk line after adoption")
        second.client().call("DELETE", url)
    finally:
        _stop_all(pins, first, second)


def test_the_agent_removes_the_empty_directories_it_made(
        tmp_path: Path, published: Callable[..., str]) -> None:
    """After a persisted program is stopped and the agent exits, no empty directory the agent
    made is left: neither its pin directory's parents in bpffs (`/sys/fs/bpf/ebpm` by
    default) nor its socket's directory. A socket whose directory's parent is missing is
    refused, not made."""
    import subprocess
    import uuid

    from tests.serve.conftest import EBPM, PIN_ROOT

    require_bpf()
    top = PIN_ROOT / f"made-{uuid.uuid4().hex[:8]}"
    sockdir = tmp_path / "run"
    agent = start_agent(tmp_path, "--socket", str(sockdir / "a.sock"), pins=top / "default")
    agent.socket = sockdir / "a.sock"
    try:
        pid = agent.start(published("svcprobe"), "--pid", str(ME), persist=True)["id"]
        assert any((top / "default").iterdir())
        agent.client().call("DELETE", f"/v1/programs/{pid}")
    finally:
        assert agent.stop() == 0, agent.output()
    assert not top.exists() and not sockdir.exists()

    proc = subprocess.run([EBPM, "serve", "--socket", str(tmp_path / "no" / "such" / "a.sock")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and f"no directory {tmp_path / 'no'}" in proc.stderr
    assert "hint: create it, or pass another --socket" in proc.stderr
    assert not (tmp_path / "no").exists()
