"""`ebpm serve` benchmarks, each against a peer measured in the same run:

1. API load of a cached, signed package, from the request to the first event in the stream,
   against `ebpm run REF` (process start to first event line) of the same package; both
   alternated, medians and ratio.
2. Hot swap: the gap between the old version's last event and the new version's first one
   (negative: both were attached for that long), and the calls missed, against stopping the
   old and starting the new one (DELETE then POST).
3. Events per second delivered to 1 and to 10 stream readers (separate processes) while a C
   producer calls getpgid as fast as it can, against `ebpm run --json` to /dev/null.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from bench.common import EBPM, PYTHON

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tests" / "serve" / "bpf" / "svcprobe"
ROUNDS = 7
SWAPS = 6
RATE_SECONDS = 3.0

PRODUCER_C = r"""
// SPDX-License-Identifier: GPL-2.0
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

int main(int argc, char **argv)
{
	double seconds = atof(argv[1]);
	struct timespec a, b;
	char go[8];
	long n = 0;

	if (!fgets(go, sizeof(go), stdin))  /* wait until the consumers are ready */
		return 1;
	clock_gettime(CLOCK_MONOTONIC, &a);
	do {
		for (int i = 0; i < 64; i++)
			syscall(SYS_getpgid, 0);
		n += 64;
		clock_gettime(CLOCK_MONOTONIC, &b);
	} while (b.tv_sec - a.tv_sec + (b.tv_nsec - a.tv_nsec) / 1e9 < seconds);
	printf("%ld\n", n);
	return 0;
}
"""

READER_PY = r"""
import socket, sys, time
path, pid, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
s.sendall(f"GET /v1/programs/{pid}/events HTTP/1.1\r\nHost: x\r\n\r\n".encode())
s.settimeout(seconds + 30)
events = 0
carry = b""
tail = b""
print("ready", flush=True)
while True:
    data = s.recv(1 << 20)
    if not data:
        break
    buf = carry + data
    events += buf.count(b'"tag":')  # one per event record
    carry = buf[-5:]
    tail = (tail + data)[-300:]
    if b'"_ebpm":"end"' in tail:
        break
print(events, tail.rsplit(b'{"_ebpm":"end"', 1)[-1].decode(errors="replace"), flush=True)
"""


class _Agent:
    def __init__(self, work: Path) -> None:
        self.socket = work / "agent.sock"
        self.log = (work / "agent.log").open("w")
        self.proc = subprocess.Popen(
            [EBPM, "serve", "--socket", str(self.socket), "--pin-dir",
             f"/sys/fs/bpf/ebpm-bench-{uuid.uuid4().hex[:8]}", "--state-dir",
             str(work / "state")], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("agent did not start")
            time.sleep(0.02)
        from ebpm.serve.client import AgentClient

        self.client = AgentClient(str(self.socket))
        while True:
            try:
                self.client.call("GET", "/healthz")
                break
            except Exception:
                time.sleep(0.02)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        self.log.close()


def _setup(work: Path) -> tuple[object, str, str]:
    """A registry holding svcprobe 1.0.0 and 2.0.0, signed by a trusted key, pulled."""
    from ebpm.build import build
    from ebpm.build.vmlinux import vmlinux_header
    from tests.registryd import start_registry

    for var, sub in (("EBPM_HOME", "home"), ("EBPM_CONFIG", "config"), ("EBPM_DATA", "data")):
        os.environ[var] = str(work / sub)
    reg = start_registry(root=work / "registry")
    header = vmlinux_header(cache_dir=work / "vmlinux")
    subprocess.run([EBPM, "key", "generate", "--trust", f"{reg.host}/**"], check=True,
                   capture_output=True)
    refs = []
    for version in ("1.0.0", "2.0.0"):
        pkg = work / f"svcprobe-{version}"
        shutil.copytree(PACKAGE, pkg)
        toml = pkg / "ebpm.toml"
        toml.write_text(toml.read_text().replace('version = "1.0.0"', f'version = "{version}"'))
        build(pkg, vmlinux_h=header)
        ref = f"{reg.host}/bench/svcprobe:{version}"
        subprocess.run([EBPM, "push", str(pkg), f"{reg.host}/bench/svcprobe", "--sign"],
                       check=True, capture_output=True)
        subprocess.run([EBPM, "pull", ref], check=True, capture_output=True)  # cached
        refs.append(ref)
    return reg, refs[0], refs[1]


def _trigger_until(done: threading.Event, period: float = 0.002) -> threading.Thread:
    def loop() -> None:
        while not done.wait(period):
            os.getpgid(0)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


def _api_first_event(agent: _Agent, ref: str) -> float:
    """Seconds from POST to the first event read from the stream."""
    done = threading.Event()
    start = time.perf_counter()
    prog = agent.client.call("POST", "/v1/programs",
                             {"ref": ref, "args": ["--pid", str(os.getpid())]})
    trigger = _trigger_until(done)
    try:
        for rec in agent.client.stream(f"/v1/programs/{prog['id']}/events?tail=all"):
            if "_ebpm" not in rec:
                return time.perf_counter() - start
        raise RuntimeError("stream ended without an event")
    finally:
        done.set()
        trigger.join()
        agent.client.call("DELETE", f"/v1/programs/{prog['id']}")


def _run_first_event(ref: str) -> float:
    """Seconds from spawning `ebpm run REF` to its first event line."""
    done = threading.Event()
    start = time.perf_counter()
    proc = subprocess.Popen([EBPM, "run", "--json", ref, "--", "--pid", str(os.getpid())],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            bufsize=1)
    trigger = _trigger_until(done)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if '"tag"' in line:
                return time.perf_counter() - start
        raise RuntimeError("ebpm run exited without an event")
    finally:
        done.set()
        trigger.join()
        proc.send_signal(signal.SIGINT)
        proc.wait(10)


def _first_event(agent: _Agent, ref: str) -> list[str]:
    api: list[float] = []
    run: list[float] = []
    _api_first_event(agent, ref)
    _run_first_event(ref)  # warm both
    for _ in range(ROUNDS):
        api.append(_api_first_event(agent, ref))
        run.append(_run_first_event(ref))
    ma, mr = statistics.median(api), statistics.median(run)
    return [
        f"load of a cached signed package to its first event, medians of {ROUNDS} alternated:",
        f"  agent: POST /v1/programs -> first streamed event  {ma * 1000:7.1f} ms "
        f"(range {min(api) * 1000:.0f}-{max(api) * 1000:.0f})",
        f"  ebpm run REF -> first event line                 {mr * 1000:7.1f} ms "
        f"(range {min(run) * 1000:.0f}-{max(run) * 1000:.0f})",
        f"  ratio agent / ebpm run: {ma / mr:.2f}x",
    ]


def _gap(agent: _Agent, refs: tuple[str, str], change: Callable[[str, str, list[str]], str]
         ) -> tuple[list[float], list[int]]:
    """Swap back and forth SWAPS times while a paced trigger numbers its calls; per change,
    the gap between old and new version's events and the calls nobody saw."""
    me = str(os.getpid())
    pid = agent.client.call("POST", "/v1/programs", {"ref": refs[0], "args": [
        "--pid", me, "--tag", "0"]})["id"]
    seen: list[tuple[float, int, int]] = []  # (arrival, tag, arg)
    stop = threading.Event()

    def follow(program: str) -> None:
        for rec in agent.client.stream(f"/v1/programs/{program}/events"):
            if "_ebpm" in rec:
                if rec["_ebpm"] == "end":
                    return
                continue
            seen.append((time.perf_counter(), rec["tag"], rec["arg"]))

    readers = [threading.Thread(target=follow, args=(pid,), daemon=True)]
    readers[0].start()
    sent = [0]

    def trigger() -> None:
        while not stop.wait(0.0005):
            sent[0] += 1
            try:
                os.getpgid(sent[0])
            except OSError:
                pass

    t = threading.Thread(target=trigger, daemon=True)
    t.start()
    time.sleep(0.3)
    gaps: list[float] = []
    missed: list[int] = []
    for i in range(1, SWAPS + 1):
        before = len(seen)
        first_seq = sent[0]
        new_pid = change(pid, refs[i % 2], ["--pid", me, "--tag", str(i)])
        if new_pid != pid:
            pid = new_pid
            readers.append(threading.Thread(target=follow, args=(pid,), daemon=True))
            readers[-1].start()
        time.sleep(0.3)
        window = seen[before:]
        old = [s for s in seen if s[1] == i - 1]
        new = [s for s in window if s[1] == i]
        if not old or not new:
            raise RuntimeError("no events around the change")
        gaps.append(min(s[0] for s in new) - max(s[0] for s in old))
        last_seq = sent[0] - 100  # well before the end of the window
        got = {s[2] for s in seen}
        missed.append(sum(1 for q in range(first_seq, last_seq) if q not in got))
    stop.set()
    t.join()
    agent.client.call("DELETE", f"/v1/programs/{pid}")
    for r in readers:
        r.join(10)
    return gaps, missed


def _swap(agent: _Agent, refs: tuple[str, str]) -> list[str]:
    def hot(pid: str, ref: str, args: list[str]) -> str:
        agent.client.call("PUT", f"/v1/programs/{pid}", {"ref": ref, "args": args})
        return pid

    def restart(pid: str, ref: str, args: list[str]) -> str:
        agent.client.call("DELETE", f"/v1/programs/{pid}")
        return str(agent.client.call("POST", "/v1/programs", {"ref": ref, "args": args})["id"])

    hot_gaps, hot_missed = _gap(agent, refs, hot)
    re_gaps, re_missed = _gap(agent, refs, restart)
    mh, mr = statistics.median(hot_gaps), statistics.median(re_gaps)
    return [
        f"version change while a trigger makes a call every 0.5 ms, medians of {SWAPS}:",
        f"  hot swap (PUT): gap {mh * 1000:+.1f} ms (negative: both versions attached), "
        f"calls missed {sum(hot_missed)}",
        f"  stop + start (DELETE, POST): gap {mr * 1000:+.1f} ms, calls missed {sum(re_missed)}",
        f"  calls missed per change: hot swap {statistics.median(hot_missed):.0f}, "
        f"stop + start {statistics.median(re_missed):.0f}",
    ]


def _producer(work: Path) -> Path:
    (work / "producer.c").write_text(PRODUCER_C)
    subprocess.run(["clang", "-O2", "-o", str(work / "producer"), str(work / "producer.c")],
                   check=True)
    return work / "producer"


def _agent_rate(agent: _Agent, ref: str, producer: Path, readers: int) -> tuple[float, int, int]:
    """Per-reader events/s, events the producer made, events readers lost (all)."""
    prod = subprocess.Popen([str(producer), str(RATE_SECONDS)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    pid = agent.client.call("POST", "/v1/programs",
                            {"ref": ref, "args": ["--pid", str(prod.pid)]})["id"]
    procs = [subprocess.Popen([PYTHON, "-c", READER_PY, str(agent.socket), pid,
                               str(RATE_SECONDS)], stdout=subprocess.PIPE, text=True)
             for _ in range(readers)]
    for p in procs:
        assert p.stdout is not None
        p.stdout.readline()
    while agent.client.call("GET", f"/v1/programs/{pid}")["readers"] < readers:
        time.sleep(0.01)
    start = time.perf_counter()
    out, _ = prod.communicate("go\n", timeout=RATE_SECONDS + 30)
    made = int(out.strip())
    seen, end = -1, start
    while True:  # until the agent has taken every record the ring kept
        now = agent.client.call("GET", f"/v1/programs/{pid}")["events"]
        if now == seen:
            break
        seen, end = now, time.perf_counter()
        time.sleep(0.3)
    elapsed = end - start
    agent.client.call("DELETE", f"/v1/programs/{pid}")
    delivered = 0
    lost = 0
    for p in procs:
        text, _ = p.communicate(timeout=60)
        count, _, tail = text.strip().partition(" ")
        delivered += int(count)
        found = re.search(r'"lost":(\d+)', tail)  # (the end record: more fields follow)
        if found:
            lost += int(found.group(1))
    return delivered / readers / elapsed, made, lost


def _run_rate(ref: str, producer: Path) -> tuple[float, int]:
    """Events/s `ebpm run --json` delivers into a pipe that is read all along (as the agent's
    readers read theirs), and the events the producer made."""
    prod = subprocess.Popen([str(producer), str(RATE_SECONDS)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    run = subprocess.Popen([EBPM, "-v", "run", "--json", ref, "--", "--pid", str(prod.pid)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert run.stdout is not None and run.stderr is not None
    for line in run.stderr:  # wait until it is attached
        if b"attached" in line:
            break
    else:
        raise RuntimeError("ebpm run did not attach")
    threading.Thread(target=run.stderr.read, daemon=True).start()
    fd = run.stdout.fileno()
    seen = {"lines": 0, "last": 0.0}

    def drain() -> None:
        carry = b""
        while chunk := os.read(fd, 1 << 20):
            buf = carry + chunk
            seen["lines"] += buf.count(b'"tag":')
            carry = buf[-5:]
            seen["last"] = time.perf_counter()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    start = time.perf_counter()
    out, _ = prod.communicate("go\n", timeout=RATE_SECONDS + 30)
    made = int(out.strip())
    while True:  # until it has printed what the ring kept: no new line for 0.3 s
        before = seen["lines"]
        time.sleep(0.3)
        if seen["lines"] == before:
            break
    elapsed = seen["last"] - start
    run.send_signal(signal.SIGINT)
    run.wait(10)
    reader.join(10)
    return seen["lines"] / elapsed, made


def _rates(agent: _Agent, ref: str, work: Path) -> list[str]:
    producer = _producer(work)
    lines = [f"events delivered per second, a C producer calling getpgid for {RATE_SECONDS:g} s:"]
    run_rate, made = _run_rate(ref, producer)
    lines.append(f"  ebpm run --json > pipe:  {run_rate:10,.0f} events/s ({made:,} calls made; "
                 "the pipe read all along; the ring drops what the consumer cannot take)")
    one, made1, lost1 = _agent_rate(agent, ref, producer, 1)
    lines.append(f"  agent, 1 reader:         {one:10,.0f} events/s per reader "
                 f"({made1:,} calls made, {lost1:,} lost by the reader)")
    ten, made10, lost10 = _agent_rate(agent, ref, producer, 10)
    lines.append(f"  agent, 10 readers:       {ten:10,.0f} events/s per reader, "
                 f"{ten * 10:,.0f} in all ({made10:,} calls made, {lost10:,} lost by readers)")
    lines.append(f"  ratio agent 1 reader / ebpm run: {one / run_rate:.2f}x; "
                 f"10 readers in all / 1 reader: {ten * 10 / one:.2f}x")
    return lines


def main() -> list[str]:
    if os.geteuid() != 0:
        return ["serve: skipped (needs root for BPF)"]
    work = Path(tempfile.mkdtemp(prefix="ebpm-bench-serve-"))
    saved = {k: os.environ.get(k) for k in ("EBPM_HOME", "EBPM_CONFIG", "EBPM_DATA")}
    reg = None
    agent = None
    try:
        reg, ref1, ref2 = _setup(work)
        agent = _Agent(work)
        out = _first_event(agent, ref1)
        out += _swap(agent, (ref1, ref2))
        out += _rates(agent, ref1, work)
        return out
    finally:
        if agent is not None:
            agent.stop()
        if reg is not None:
            reg.stop()  # type: ignore[attr-defined]
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    print("\n".join(main()))
    sys.exit(0)
