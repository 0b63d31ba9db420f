"""`ebpm run --agent ADDRESS REF` without --detach: the agent runs the package, the CLI prints its
events until the run ends (--max-events, --duration, Ctrl-C, SIGTERM, or `ebpm stop` from
elsewhere), and the program is gone from the agent afterwards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

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
    (start, *events, summary) = [rec for rec in records if "map" not in rec]
    assert start["ebpm"] == "start" and start["agent"] == f"unix:{agent.socket}"
    assert start["id"] and start["attached"] == ["handle_getpgid"]
    assert start["events"] == ["events"] and start["results"] == ["call_counts", "hist"]
    # its result maps once at the end, as a standalone run prints them
    assert [(rec["map"], rec["final"]) for rec in records if "map" in rec] == [
        ("call_counts", True), ("hist", True)]
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
    assert shown[1].split()[0] == str(ME)  # the one event
    if how == "ebpm stop":  # gone with its maps: nothing after the event
        assert not out and "(stopped: stopped)" in err
    else:  # its result maps at the end, as a standalone run's
        assert "call_counts:" in out and "distribution" in out and "(stopped: signal)" in err
    assert _programs(agent) == []


def _getpgid_calls(n: int, arg: int) -> None:
    for _ in range(n):
        try:
            os.getpgid(arg)
        except ProcessLookupError:
            pass


def test_attached_run_prints_the_result_maps_of_a_package_without_events(
        agent: Agent, published: Callable[..., str]) -> None:
    """A package with result maps only (a histogram, as runqlat): the attached run prints them
    every --interval and at the end, each report what was counted since the one before (the
    agent never empties its maps); the reports add up to every call made."""
    require_bpf()
    ref = published("histprobe")

    def attached_run(*options: str) -> tuple[str, str]:
        proc = subprocess.Popen([EBPM, "run", "--agent", str(agent.socket), "--allow-unsigned",
                                 ref, *options, "--", "--pid", str(ME)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: len(_programs(agent)) == 1, what="the program in the agent")
            _getpgid_calls(42, 1000)  # (counted as they are made) slot 9: 512 -> 1023
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            terminate(proc)
        assert proc.returncode == 0, err
        assert _programs(agent) == []
        return out, err

    out, err = attached_run("--json", "--interval", "0.2")
    records = [json.loads(line) for line in out.splitlines()]
    start, *reports, summary = records
    assert start["ebpm"] == "start" and start["events"] == [] and start["results"] == ["hists"]
    assert reports and all(r["map"] == "hists" and r["kind"] == "hist" for r in reports)
    assert [r["final"] for r in reports][-1] is True and reports[-1]["unit"] == "args"
    counted = [row["value"]["slots"] for r in reports for row in r["rows"]]
    assert sum(slots[9] for slots in counted if len(slots) > 9) == 42
    assert sum(sum(slots) for slots in counted) == 42  # no call counted twice
    assert summary["stopped_by"] == "signal" and summary["maps"] == {"hists": 1}
    assert summary["unit"] == "args"

    out, err = attached_run()  # the table: the histogram as `ebpm run` prints it
    assert "args" in out and "distribution" in out and "512 -> 1023" in out, out
    assert "(stopped: signal)" in err


def test_a_stop_while_the_agent_starts_it_still_says_it_started(
        agent: Agent, published: Callable[..., str]) -> None:
    """Ctrl-C while the agent starts the program (its POST under way): once the agent answers,
    the run prints its start (the program was attached) and then its summary, and stops it (the
    start was left out, so a --json reader got a summary alone)."""
    require_bpf()
    ref = published("histprobe")
    agent.process.send_signal(signal.SIGSTOP)  # the POST waits in the socket's backlog
    proc = subprocess.Popen([EBPM, "run", "--agent", str(agent.socket), "--allow-unsigned",
                             "--json", ref, "--", "--pid", str(ME)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def asking() -> bool:  # its one socket: the request to the agent has begun
            try:
                fds = list(Path(f"/proc/{proc.pid}/fd").iterdir())
                return any(os.readlink(fd).startswith("socket:") for fd in fds)
            except OSError:  # (an fd closed meanwhile)
                return False
        wait_for(asking, what="the run's request to the agent")
        proc.send_signal(signal.SIGINT)
        agent.process.send_signal(signal.SIGCONT)
        out, err = proc.communicate(timeout=60)
    finally:
        agent.process.send_signal(signal.SIGCONT)
        terminate(proc)
    assert proc.returncode == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert records[0]["ebpm"] == "start" and records[-1]["stopped_by"] == "signal", out
    assert _programs(agent) == []


# what `ebpm run --agent ADDRESS REF` must not import before it prints the first event (issue
# 18: with an agent running, a start only attaches, and this process's own start-up is most of
# the first event's time): the registry's HTTP stack, crypto, click and rich; typing and
# dataclasses (ebpm.record instead); pathlib, ipaddress, urllib (a socket path or HOST:PORT is
# a str); threading (one request at a time); ctypes (Ctrl-C is held by `signal`'s handler,
# which the attached run needs anyway); logging; what the agent's own side imports
ATTACHED_RUN_AVOIDS = (
    "requests", "urllib3", "http", "email", "ssl", "cryptography", "click", "rich",
    "typing", "dataclasses", "inspect", "ast", "tokenize", "pathlib", "ipaddress", "urllib",
    "threading", "ctypes", "struct", "logging", "asyncio", "uvicorn", "starlette",
    "ebpm.oci.deadline", "ebpm.oci.transport", "ebpm.loader.libbpf", "ebpm.package",
    "ebpm.transfer",
)

_AUDITED_ATTACHED_RUN = """
import sys
avoid = tuple(sys.argv[1].split(","))
pid = sys.argv[2]
tried, compiled, seen = set(), [], {}

def audit(event, args):
    if event == "import" and not seen:
        name = str(args[0])
        if any(name == a or name.startswith(a + ".") for a in avoid):
            tried.add(name)  # every import attempt, even one that fails or is undone

sys.addaudithook(audit)
import re  # (imported by json anyway: here only to see who compiles a pattern)
_compile = re._compile

def counted(pattern, flags):
    caller = sys._getframe(1)
    while caller.f_globals.get("__name__", "").startswith("re"):
        caller = caller.f_back
    if not seen:
        compiled.append((caller.f_globals.get("__name__"), str(pattern)))
    return _compile(pattern, flags)

re._compile = counted
real = sys.stdout

class Out:  # the first event's line: what was imported and compiled until then
    def __getattr__(self, name):
        return getattr(real, name)

    def write(self, text):
        if not seen and text.split()[:1] == [pid]:
            seen["imported"] = sorted(tried | {m for m in sys.modules
                                               if any(m == a or m.startswith(a + ".")
                                                      for a in avoid)})
            seen["compiled"] = [c for c in compiled if not str(c[0]).startswith("json")]
        return real.write(text)

sys.stdout = Out()
from ebpm.cli import main
try:
    code = main(sys.argv[3:])
finally:
    import json
    print("audit: " + json.dumps(seen), file=sys.stderr)
sys.exit(code)
"""


def test_attached_run_imports_nothing_heavy_before_its_first_event(
        agent: Agent, published: Callable[..., str]) -> None:
    """`ebpm run --agent` up to its first printed event, through the real entry point: none of
    ATTACHED_RUN_AVOIDS imported (an audit hook sees every attempt) and no pattern compiled
    but json's own."""
    require_bpf()
    ref = published("svcprobe")
    import sys

    with Trigger(lambda: os.getpgid(0), period=0.02):
        proc = subprocess.run(
            [sys.executable, "-c", _AUDITED_ATTACHED_RUN, ",".join(ATTACHED_RUN_AVOIDS),
             str(ME), "run", "--agent", str(agent.socket), "--allow-unsigned", ref,
             "--max-events", "1", "--", "--pid", str(ME)],
            capture_output=True, text=True, cwd="/", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1].split()[0] == str(ME), proc.stdout
    audit = json.loads(proc.stderr.splitlines()[-1].removeprefix("audit: "))
    assert audit == {"imported": [], "compiled": []}, audit
    assert _programs(agent) == []
