"""A package with a WebAssembly userspace runs in the agent: its output lines are the events,
and a guest that traps fails alone (the agent, its other programs and new ones carry on)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.bpfobjects import held_ids
from tests.cli import ebpm
from tests.registryd import Registryd
from tests.serve.conftest import Agent, wait_for

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "wasm-bpf" / "runtime-tests"

pytestmark = [pytest.mark.kernel, pytest.mark.registry]
ME = os.getpid()


def test_a_trapping_guest_fails_alone(agent: Agent, published: Callable[..., str]) -> None:
    native = agent.start(published("svcprobe"), "--pid", str(ME))
    guest = agent.start(published("wasmtrap", "0.1.0"))  # examples/wasm-execsnoop's version
    assert guest["status"] == "running"
    lines = [e for e in agent.client().stream(
        f"/v1/programs/{guest['id']}/events?follow=false&tail=all") if "line" in e]
    assert lines[0] == {"line": "READY"}

    def failed() -> bool:
        subprocess.run(["/bin/true"], check=True)  # an exec: the guest's first event
        return agent.client().call("GET", f"/v1/programs/{guest['id']}")["status"] == "failed"

    wait_for(failed, timeout=30, interval=0.2, what="the guest to trap")
    info = agent.client().call("GET", f"/v1/programs/{guest['id']}")
    assert "trap" in info["error"]
    assert agent.client().call("GET", "/healthz")["status"] == "ok"
    assert agent.client().call("GET", f"/v1/programs/{native['id']}")["status"] == "running"
    again = agent.start(published("svcprobe"), "--pid", str(ME), "--tag", "2")
    assert again["status"] == "running"
    for pid in (guest["id"], native["id"], again["id"]):
        agent.client().call("DELETE", f"/v1/programs/{pid}")
    wait_for(lambda: not held_ids(agent.process.pid)["prog"], what="everything unloaded")


def test_a_pushed_bare_wasm_module_runs_in_the_agent(
        agent: Agent, registry: Registryd, capsys: pytest.CaptureFixture[str]) -> None:
    """A `.wasm` pushed as it is (a package of the module layer only, docs/wasm.md) runs in the
    agent as a package with a wasm userspace does (was: "the package has no BPF object
    layer"); persist, which pins a BPF object, is refused for it with a hint."""
    from ebpm.transfer.push import push

    ref = f"{registry.host}/serve/execve:0.1.0"
    push(CORPUS / "execve.wasm", ref)
    guest = agent.start(ref)
    try:
        assert guest["status"] == "running" and guest["streams"] == ["stdout"]

        def printed() -> bool:
            subprocess.run(["/bin/true"], check=True)  # an exec: one line of the guest
            return any("/bin/true" in e.get("line", "") for e in agent.client().stream(
                f"/v1/programs/{guest['id']}/events?follow=false&tail=all"))

        wait_for(printed, timeout=30, interval=0.2, what="the guest's line for /bin/true")
    finally:
        agent.client().call("DELETE", f"/v1/programs/{guest['id']}")
    r = ebpm(capsys, "run", "--detach", "--persist", "--allow-unsigned", "--agent",
             str(agent.socket), ref)
    assert r.code == 2 and "is a bare WebAssembly module" in r.err and "hint:" in r.err, r.err
    wait_for(lambda: not held_ids(agent.process.pid)["prog"], what="everything unloaded")
