"""Run a local registry for development: Debian's docker-registry, or registry:2 via Docker."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ebpm.errors import EbpmError, ToolMissingError

__all__ = ["ServerStatus", "up", "down", "status", "default_port", "short_names_elsewhere"]

CONTAINER = "ebpm-registry"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000
CONTAINER_PORT = 5000  # where registry:2 listens inside its container


@dataclass(frozen=True)
class ServerStatus:
    running: bool
    address: str = ""
    kind: str = ""  # "docker-registry" or "docker"
    pid: int = 0
    data: str = ""
    started: bool = False  # False: `up` found it already running


def _dir() -> Path:
    from ebpm import config

    return Path(config.data_dir(), "registry")


def _docker_engine() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _answers(address: str, timeout: float) -> bool:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://{address}/v2/", timeout=0.5):
                return True
        except urllib.error.HTTPError:
            return True  # it answered (e.g. 401 with auth)
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


def _pid() -> int:
    try:
        pid = int((_dir() / "pid").read_text())
        os.kill(pid, 0)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return 0
    return pid if b"docker-registry" in cmdline else 0


def status() -> ServerStatus:
    pid = _pid()
    if pid:
        return ServerStatus(True, _recorded_address(), "docker-registry", pid,
                            str(_dir() / "data"))
    if shutil.which("docker") and _docker_engine():
        out = subprocess.run(["docker", "ps", "-q", "-f", f"name={CONTAINER}"],
                             capture_output=True, text=True).stdout.strip()
        if out:
            return ServerStatus(True, _recorded_address(), "docker", 0, "volume ebpm-registry")
    return ServerStatus(False)


def _recorded_address() -> str:
    """The address `up` last started a registry on (the default before any)."""
    try:
        return (_dir() / "address").read_text().strip() or f"{DEFAULT_HOST}:{DEFAULT_PORT}"
    except OSError:
        return f"{DEFAULT_HOST}:{DEFAULT_PORT}"


def _port_taken(host: str, port: int) -> str:
    """Why host:port cannot be listened on ("" when it can): another server holds it."""
    import errno
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the registry binds
        try:
            sock.bind((host.strip("[]"), port))
        except OSError as err:
            return "in use by another server" if err.errno == errno.EADDRINUSE else (
                err.strerror or str(err))
    return ""


def default_port() -> int:
    """The port of $EBPM_REGISTRY when it names a loopback registry (localhost:5001), so that
    `ebpm registry up` starts the registry short names resolve against; else 5000."""
    from ebpm import config

    host, _, port = config.default_registry().rpartition(":")
    loopback = host in {"localhost", "[::1]"} or host.startswith("127.")
    return int(port) if loopback and port.isdigit() and 0 < int(port) < 65536 else DEFAULT_PORT


def short_names_elsewhere(address: str) -> str:
    """$EBPM_REGISTRY when short names (`tools/opensnoop`) resolve to another registry than
    the local one on `address`, else ""."""
    from ebpm import config
    from ebpm.oci.reference import is_loopback

    default = config.default_registry()
    port = address.rpartition(":")[2]
    return "" if is_loopback(default) and default.rpartition(":")[2] == port else default


def _host_of(url: str) -> str:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).hostname or ""
    except ValueError:  # http://[bad
        return ""


def _notifications(url: str, secret: str) -> str:
    """The config section that makes the registry POST push/delete events to `url` (an
    `ebpm hub serve`), authenticated with `secret`; blob and pull events are left out."""
    import json

    return ("notifications:\n  endpoints:\n"
            f"    - name: ebpm-hub\n      url: {json.dumps(url)}\n"
            f"      headers:\n        Authorization: [{json.dumps('Bearer ' + secret)}]\n"
            "      timeout: 2s\n      threshold: 5\n      backoff: 1s\n"
            "      ignore:\n        mediatypes: [application/octet-stream]\n"
            "        actions: [pull]\n")


def up(*, port: int = DEFAULT_PORT, host: str = DEFAULT_HOST, notify: str = "",
       notify_secret: str = "") -> ServerStatus:
    """Start a registry on host:port (delete enabled, data kept across restarts). `notify`: a URL
    the registry posts push and delete events to, with `notify_secret` as bearer token."""
    from ebpm.errors import UsageError

    if notify and (not notify.startswith(("http://", "https://")) or not _host_of(notify)):
        raise UsageError(f"--notify {notify!r}: not an http(s) URL with a host",
                         hint="give an `ebpm hub serve`'s events URL, e.g. "
                              "http://127.0.0.1:8080/-/events")
    if notify and not notify_secret:
        raise UsageError(f"--notify {notify!r}: needs a shared secret",
                         hint="set EBPM_HUB_SECRET (the same as for `ebpm hub serve`)")
    address = f"{host}:{port}"
    current = status()
    if current.running:
        if current.address != address:
            raise UsageError(
                f"registry up: a registry is already running on {current.address}, "
                f"not on {address}",
                hint=f"`ebpm registry down` first, or use it: EBPM_REGISTRY={current.address}")
        if notify:
            raise UsageError("registry up --notify: a registry is already running",
                             hint="`ebpm registry down` first, then start it with --notify")
        return current
    taken = _port_taken(host, port)
    if taken:
        raise EbpmError(f"registry up: {address} is {taken}",
                        hint="pass --port to pick another port (and set EBPM_REGISTRY to match)")
    if shutil.which("docker-registry") is None:
        if _docker_engine() and not notify:
            subprocess.run(["docker", "rm", "-f", CONTAINER], capture_output=True)  # a stopped one
            done = subprocess.run(
                ["docker", "run", "-d", "--name", CONTAINER, "--restart", "unless-stopped",
                 "-p", f"{address}:{CONTAINER_PORT}", "-e", "REGISTRY_STORAGE_DELETE_ENABLED=true",
                 "-v", "ebpm-registry:/var/lib/registry", "registry:2"],
                capture_output=True, text=True,
            )
            if done.returncode != 0:
                why = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise EbpmError(f"registry up: docker run registry:2 failed: {why}",
                                hint="install Debian's docker-registry instead "
                                     "(apt-get install docker-registry)")
            _dir().mkdir(parents=True, exist_ok=True)
            (_dir() / "address").write_text(address)
            if not _answers(address, 15):
                raise EbpmError(f"registry:2 did not answer on {address}")
            return ServerStatus(True, address, "docker", 0, "volume ebpm-registry", started=True)
        raise ToolMissingError("docker-registry is not installed",
                               hint="apt-get install docker-registry")
    root = _dir()
    (root / "data").mkdir(parents=True, exist_ok=True)
    config = root / "config.yml"
    from ebpm.files import PRIVATE_MODE, atomic_write

    atomic_write(config, (
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: {address}\n  secret: {os.urandom(16).hex()}\n"
        + (_notifications(notify, notify_secret) if notify else "")
    ), mode=PRIVATE_MODE)
    log = open(root / "registry.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    (root / "pid").write_text(str(proc.pid))
    (root / "address").write_text(address)
    deadline = time.monotonic() + 10
    try:
        while not _answers(address, 0):  # ours, not another server: that one held the port
            if proc.poll() is not None or time.monotonic() >= deadline:
                raise EbpmError(f"registry up: docker-registry did not start on {address}"
                                + (f": {_last_line(root / 'registry.log')}"
                                   if proc.poll() else ""),
                                hint=f"see {root / 'registry.log'}")
            time.sleep(0.05)
    except BaseException:  # not started, or Ctrl-C while it starts: none left running
        proc.terminate()
        proc.wait()
        (root / "pid").unlink(missing_ok=True)
        raise
    return ServerStatus(True, address, "docker-registry", proc.pid, str(root / "data"),
                        started=True)


def _last_line(log: Path) -> str:
    """The registry's last log line (why it stopped), shortened."""
    try:
        lines = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return (lines[-1] if lines else "no log")[-200:]


def down() -> bool:
    """Stop the registry `up` started; False when none was running."""
    pid = _pid()
    if pid:
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not _pid():  # gone, or a zombie (its parent is the process that ran `up`)
                break
            time.sleep(0.05)
        (_dir() / "pid").unlink(missing_ok=True)
        return True
    if _docker_engine():
        return subprocess.run(["docker", "rm", "-f", CONTAINER],
                              capture_output=True).returncode == 0
    return False
