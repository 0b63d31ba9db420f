"""Agent fixtures: test packages pushed to the real registry, and a real `ebpm serve` process."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# The agent runs programs in its own process: tests check that process's programs, links and
# maps by id (held_ids/alive_ids), which holds even while others run the same tests at once.
from tests.loader.conftest import (  # noqa: F401 - fixtures shared with the loader tests
    no_bpf_fds_leaked,
    require_bpf,
    vmlinux_h,
)
from tests.registryd import Registryd

SERVE_BPF = Path(__file__).resolve().parent / "bpf"
EBPM = str(Path(sys.executable).with_name("ebpm"))


@pytest.fixture(scope="session")
def serve_packages(tmp_path_factory: pytest.TempPathFactory, vmlinux_h: Path,  # noqa: F811
                   ) -> Callable[..., Path]:
    """package(name, version=None) -> tests/serve/bpf/NAME built by `ebpm build` (optionally
    with another version in its ebpm.toml)."""
    from ebpm.build import build

    cache: dict[tuple[str, str | None], Path] = {}

    def get(name: str, version: str | None = None) -> Path:
        key = (name, version)
        if key not in cache:
            dest = tmp_path_factory.mktemp("srvpkg") / name
            root = Path(__file__).resolve().parents[2]
            if name == "wasmtrap":  # examples/wasm-execsnoop whose guest traps at its 1st event
                shutil.copytree(root / "examples" / "wasm-execsnoop", dest)
                shutil.copyfile(root / "tests" / "wasm" / "guests" / "trap.c", dest / "app.c")
            elif name == "wasm-execsnoop":  # as it is (its guest exits after --max-events N)
                shutil.copytree(root / "examples" / "wasm-execsnoop", dest)
            else:
                shutil.copytree(SERVE_BPF / name, dest)
            if version:
                toml = dest / "ebpm.toml"
                toml.write_text(toml.read_text().replace('version = "1.0.0"',
                                                         f'version = "{version}"'))
            build(dest, vmlinux_h=vmlinux_h)
            cache[key] = dest
        return cache[key]

    return get


@pytest.fixture(scope="session")
def published(registry: Registryd, serve_packages: Callable[..., Path]) -> Callable[..., str]:
    """publish(name, version="1.0.0") -> the reference of the package pushed (unsigned)."""
    from ebpm.transfer.push import push

    done: dict[tuple[str, str], str] = {}

    def get(name: str, version: str = "1.0.0") -> str:
        if (name, version) not in done:
            repo = f"{registry.host}/serve/{name}"  # (wasmtrap's package is named execsnoop)
            push(serve_packages(name, None if version == "1.0.0" else version), repo)
            done[(name, version)] = f"{repo}:{version}"
        return done[(name, version)]

    return get


@dataclass
class Agent:
    """A running `ebpm serve` process and a client for it."""

    process: subprocess.Popen[str]
    socket: Path
    log: Path
    tcp: str = ""
    token: str = ""
    pins: Path = Path()
    state: Path = Path()

    def client(self, **kw: object):  # type: ignore[no-untyped-def]
        from ebpm.serve.client import AgentClient

        return AgentClient(str(self.socket), **kw)  # type: ignore[arg-type]

    def start(self, ref: str, *args: str, **body: object) -> dict:  # type: ignore[type-arg]
        return self.client().call("POST", "/v1/programs", {  # type: ignore[no-any-return]
            "ref": ref, "args": list(args), "allow_unsigned": True, **body})

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for d in (self.pins, PIN_ROOT):  # empty directories only; shared by concurrent runs
            try:
                d.rmdir()
            except OSError:
                pass
        return self.process.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


PIN_ROOT = Path("/sys/fs/bpf/ebpm-test")


def start_agent(tmp: Path, *extra: str, env: dict[str, str] | None = None,
                wait_tcp: str = "", pins: Path | None = None,
                state: Path | None = None) -> Agent:
    """`ebpm serve` on a socket in `tmp`, with its own pin directory (unique, under
    /sys/fs/bpf/ebpm-test) and state directory unless given (to restart "the same" agent).
    Its warm cache is off unless `extra` sets --warm: these tests watch a stopped program
    unload at once (tests/serve/test_serve_warm.py watches the cache)."""
    if "--warm" not in extra:
        extra = ("--warm", "0", *extra)
    sock = tmp / f"agent-{uuid.uuid4().hex[:8]}.sock"
    log = tmp / f"{sock.stem}.log"
    pins = pins or PIN_ROOT / uuid.uuid4().hex[:12]
    state = state or tmp / f"{sock.stem}-state"
    with log.open("w") as out:
        proc = subprocess.Popen([EBPM, "-v", "serve", "--socket", str(sock), "--pin-dir",
                                 str(pins), "--state-dir", str(state), *extra],
                                stdout=out, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, **(env or {})})
    agent = Agent(proc, sock, log, pins=pins, state=state)
    deadline = time.monotonic() + 30
    while "listening on" not in agent.output() or (wait_tcp and wait_tcp not in agent.output()):
        if proc.poll() is not None or time.monotonic() > deadline:
            agent.stop()
            raise AssertionError(f"agent did not start:\n{agent.output()}")
        time.sleep(0.02)
    return agent


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    """A fresh agent on a Unix socket in tmp_path; stopped (SIGTERM) afterwards."""
    require_bpf()
    a = start_agent(tmp_path)
    yield a
    code = a.stop()
    assert code == 0, a.output()
    assert not a.pins.exists() or not any(a.pins.iterdir()), "pins left behind"


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, what: str = "",
             interval: float = 0.02) -> None:
    """Poll until `predicate()` is true (a wait, not a timed assertion)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(interval)


def terminate(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def ask(agent: Agent, path: str) -> tuple[socket.socket, int, dict[str, str], bytes]:
    """GET `path` of the agent over a socket of our own: the answer's status, headers and
    what came of its body with them; the rest is left unread (a long answer, an output read or
    an event stream, stalls once the socket's buffers are full, and holds its place under the
    agent's cap until the socket closes)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(str(agent.socket))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *fields = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (f.partition(":") for f in fields)}
    while len(body) < int(headers.get("content-length", 0)):  # (an error: all of it)
        chunk = s.recv(4096)
        assert chunk, body
        body += chunk
    return s, int(status_line.split()[1]), headers, body
