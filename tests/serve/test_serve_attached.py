"""`ebpm run --agent ADDRESS REF` without --detach: the agent runs the package, the CLI prints its
events until the run ends (--max-events, --duration, Ctrl-C, SIGTERM, or `ebpm stop` from
elsewhere), and the program is gone from the agent afterwards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable

import pytest

from tests.cli import ebpm
from tests.loader.conftest import Trigger
from tests.serve.conftest import EBPM, Agent, require_bpf, terminate, wait_for

pytestmark = [pytest.mark.kernel, pytest.mark.registry]
ME = os.getpid()


def _programs(agent: Agent) -> list[dict]:  # type: ignore[type-arg]
    return agent.client().call("GET", "/v1/programs")["programs"]  # type: ignore[no-any-return]


def test_attached_run_prints_the_agents_events_then_stops_the_program(
        agent: Agent, published: Callable[..., str], capsys: pytest.CaptureFixture[str]) -> None:
    require_bpf()
    ref = published("svcprobe")
    at = ("--agent", str(agent.socket))
    with Trigger(lambda: os.getpgid(0), period=0.02):
        r = ebpm(capsys, "run", "--allow-unsigned", *at, ref, "--json", "--max-events", "3",
                 "--", "--pid", str(ME), "--tag", "9")
    assert r.code == 0, r.err
    records = [json.loads(line) for line in r.out.splitlines()]
    (start, *events, summary) = records
    assert start["ebpm"] == "start" and start["agent"] == f"unix:{agent.socket}"
    assert start["id"] and start["attached"] == ["handle_getpgid"]
    assert len(events) == 3 and all(e["tag"] == 9 and e["pid"] == ME for e in events)
    assert summary["ebpm"] == "summary" and summary["events"] == 3
    assert summary["stopped_by"] == "max-events" and summary["package"] == "svcprobe"
    assert _programs(agent) == []  # stopped when the run ended

    with Trigger(lambda: os.getpgid(0), period=0.02):  # the table, ended by --duration
        r = ebpm(capsys, "run", "--allow-unsigned", *at, ref, "--duration", "0.5", "--",
                 "--pid", str(ME))
    assert r.code == 0, r.err
    assert r.out.splitlines()[0].split() == ["PID", "TAG", "ARG", "COMM"]
    assert f"ebpm: svcprobe (in the agent at unix:{agent.socket} as " in r.err
    assert "): attached handle_getpgid (tracepoint/syscalls/sys_enter_getpgid)" in r.err
    assert "(stopped: duration)" in r.err and _programs(agent) == []


def test_attached_run_refusals(agent: Agent, published: Callable[..., str],
                               capsys: pytest.CaptureFixture[str]) -> None:
    at = ("--agent", str(agent.socket))
    r = ebpm(capsys, "run", *at, "--native", "x:1.0.0")
    assert r.code == 2 and "--agent: --native is for a run in this process" in r.err
    assert "leave out --agent" in r.err
    r = ebpm(capsys, "run", *at, "--allow-unsigned", published("svcprobe"), "--", "-h")
    assert r.code == 0 and "--pid" in r.out and "--tag" in r.out, r.err
    r = ebpm(capsys, "run", *at, published("svcprobe"))  # unsigned: the agent's policy says no
    assert r.code != 0 and "sign" in r.err.lower() and _programs(agent) == []


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "ebpm stop"])
def test_attached_run_ends_on_a_signal_or_a_stop(
        agent: Agent, published: Callable[..., str], how: str) -> None:
    require_bpf()
    ref = published("svcprobe")
    proc = subprocess.Popen([EBPM, "run", "--agent", str(agent.socket), "--allow-unsigned", ref,
                             "--", "--pid", str(ME)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(_programs(agent)) == 1, what="the program in the agent")
        (prog,) = _programs(agent)
        os.getpgid(0)
        assert proc.stdout is not None
        shown = [proc.stdout.readline(), proc.stdout.readline()]  # the header, the event
        if how == "ebpm stop":
            agent.client().call("DELETE", f"/v1/programs/{prog['id']}")
        else:
            proc.send_signal(getattr(signal, how))
        out, err = proc.communicate(timeout=30)
    finally:
        terminate(proc)
    assert proc.returncode == 0, err
    assert shown[0].split() == ["PID", "TAG", "ARG", "COMM"]
    assert shown[1].split()[0] == str(ME) and not out  # the one event, nothing after it
    assert f"(stopped: {'stopped' if how == 'ebpm stop' else 'signal'})" in err
    assert _programs(agent) == []
