"""`ebpm run --detach` hands a package to the running agent; `ebpm run --metrics` serves
Prometheus metrics of one foreground run."""

from __future__ import annotations

import os
import re
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli import ebpm
from tests.registryd import Registryd, free_port
from tests.serve.conftest import EBPM, Agent, require_bpf, terminate, wait_for

pytestmark = [pytest.mark.kernel, pytest.mark.registry]
ME = os.getpid()


def test_run_detach_hands_the_package_to_the_agent(
        agent: Agent, published: Callable[..., str], capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    ref = published("svcprobe")
    at = ("--agent", str(agent.socket))
    r = ebpm(capsys, "run", "--detach", "--allow-unsigned", *at, ref, "--", "--pid", str(ME),
             "--tag", "4")
    assert r.code == 0, r.err
    pid = r.out.strip()
    assert re.fullmatch(r"[0-9a-f]{12}", pid)
    assert f"runs in the agent as {pid}: handle_getpgid -> tracepoint" in r.err
    (prog,) = agent.client().call("GET", "/v1/programs")["programs"]
    assert prog["id"] == pid and prog["args"] == ["--pid", str(ME), "--tag", "4"]
    r = ebpm(capsys, "run", "--detach", "--duration", "3", *at, ref)
    assert r.code == 2 and "--duration is not for a detached program" in r.err
    r = ebpm(capsys, "run", "--detach", "--unit", "ms", *at, ref)  # (was taken, and ignored)
    assert r.code == 2 and "--unit is not for a detached program" in r.err
    r = ebpm(capsys, "run", "--detach", "--attach", "handle_getpgid=raw_tp:x", *at, ref)
    assert r.code == 2 and "--attach is for a run in this process" in r.err
    assert "hint: leave out --detach to run it here" in r.err and "ebpm logs" not in r.err
    tok = tmp_path / "tok"
    tok.write_text("t" * 32)
    r = ebpm(capsys, "run", "--token-file", str(tok), ref)  # (was taken, and ignored)
    assert r.code == 2 and "--token-file is the agent's token" in r.err
    r = ebpm(capsys, "run", "--persist", ref)
    assert r.code == 2 and "--persist goes with --detach" in r.err
    r = ebpm(capsys, "run", "--detach", ref, *at)  # unsigned: refused by the agent's policy
    assert r.code != 0 and "sign" in (r.err.lower())
    assert len(agent.client().call("GET", "/v1/programs")["programs"]) == 1
    r = ebpm(capsys, "stop", pid, *at)
    assert r.code == 0


def test_run_detach_without_an_agent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = ebpm(capsys, "run", "--detach", "--agent", str(tmp_path / "no.sock"), "x:1.0.0")
    assert r.code == 1 and "start one with `ebpm serve`" in r.err


def test_an_https_address_of_a_plain_http_server_says_so(
        registry: Registryd, capsys: pytest.CaptureFixture[str]) -> None:
    """https:// to a server that answers in plain http (here the registry) is a protocol
    mismatch: was "[SSL: WRONG_VERSION_NUMBER]" and a hint to start an agent."""
    r = ebpm(capsys, "ps", "--agent", f"https://{registry.host}")
    assert r.code == 1 and "answers in plain http, not https" in r.err, r.err
    assert "http://HOST:PORT" in r.err and "ebpm serve" not in r.err


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return resp.read().decode()  # type: ignore[no-any-return]


@pytest.mark.parametrize("interval", [None, "0.2"])
def test_run_metrics_serves_one_foreground_tool(tmp_path: Path, published: Callable[..., str],
                                                interval: str | None) -> None:
    """Maps read live, or (with --interval, which empties them after each print) added up
    across intervals: the counters only grow either way."""
    require_bpf()
    ref = published("svcprobe")
    port = free_port()
    err_log = tmp_path / "run.err"
    every = ["--interval", interval] if interval else []
    with err_log.open("w") as err:
        proc = subprocess.Popen(
            [EBPM, "run", "--allow-unsigned", "--json", "--metrics", f"127.0.0.1:{port}",
             *every, ref, "--", "--pid", str(ME)], stdout=subprocess.PIPE, stderr=err,
            text=True)
    try:
        wait_for(lambda: "metrics at" in err_log.read_text() or proc.poll() is not None,
                 timeout=30)
        assert proc.poll() is None, err_log.read_text()
        wait_for(lambda: "\nebpm_program_load_seconds{" in _scrape(port), timeout=30,
                 what="the program to be attached")
        for i in range(1, 4):
            os.getpgid(i)
        if interval:  # the next two land in a later interval
            wait_for(lambda: 'svcprobe_calls_total{' in _scrape(port), what="the first interval")
        for i in range(4, 6):
            os.getpgid(i)
        wait_for(lambda: 'ebpm_program_events_total{id="run",package="svcprobe"} 5.0'
                 in _scrape(port), what="5 events in the scrape")
        counted = re.compile(r'svcprobe_calls_total\{comm="[^"]+",id="run",'
                             r'package="svcprobe"\} 5\.0')
        wait_for(lambda: counted.search(_scrape(port)), what="the counts (after an interval)")
        text = _scrape(port)
        assert 'ebpm_svcprobe_hist_bucket{id="run",le="+Inf",package="svcprobe"} 5.0' in text
        assert "process_open_fds" in text
    finally:
        terminate(proc)
    assert proc.returncode == 0, err_log.read_text()
    out = proc.stdout.read() if proc.stdout else ""
    assert len([ln for ln in out.splitlines() if '"tag"' in ln]) == 5
    assert out.startswith('{"ebpm":"start"')  # the printer still hears of the start
    if interval:
        assert '"map":"call_counts"' in out  # printed (and emptied) every interval
    with pytest.raises(OSError):  # the metrics server went with the run
        _scrape(port)


def test_run_metrics_needs_a_loopback_address(capsys: pytest.CaptureFixture[str],
                                              published: Callable[..., str]) -> None:
    require_bpf()
    r = ebpm(capsys, "run", "--allow-unsigned", "--metrics", "0.0.0.0:9100",
             published("svcprobe"))
    assert r.code == 2 and "expected a loopback HOST:PORT" in r.err
    for bad in ("9100", "127.0.0.1:abc", "127.0.0.1:99999", "/tmp/m.sock"):
        r = ebpm(capsys, "run", "--allow-unsigned", "--metrics", bad, published("svcprobe"))
        assert r.code == 2, r.err
        assert r.err.splitlines()[0] == (
            f"error: --metrics {bad}: expected HOST:PORT such as 127.0.0.1:9100"), r.err
        assert "agent" not in r.err
