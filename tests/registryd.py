"""Start and stop a real CNCF distribution registry (Debian's docker-registry) for tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from urllib3.exceptions import InsecureRequestWarning

__all__ = ["Registryd", "die_with_parent", "free_port", "start_registry"]

BINARY = "docker-registry"


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM when the test process dies (a killed pytest left
    registries running: they are in their own session, out of reach of the terminal's signal)."""
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Registryd:
    """A running registry: `host` is 127.0.0.1:PORT; `root` holds its storage and config."""

    host: str
    root: Path
    process: subprocess.Popen[bytes]
    scheme: str = "http"
    log_path: Path = field(default_factory=Path)
    owned: bool = False  # `root` is a temporary directory of its own: removed by `stop`

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def storage(self) -> Path:
        return self.root / "storage"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """The registry process ended, and its directory removed when it made its own."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.owned:
            shutil.rmtree(self.root, ignore_errors=True)


def _yaml(value: Any, indent: int = 0) -> str:
    """A tiny YAML writer for the registry's config (strings, ints, bools, dicts, lists)."""
    pad = "  " * indent
    lines = []
    for key, item in value.items():
        if isinstance(item, dict):
            lines.append(f"{pad}{key}:")
            lines.append(_yaml(item, indent + 1))
        elif isinstance(item, list):
            lines.append(f"{pad}{key}:")
            for element in item:
                if isinstance(element, dict):
                    body = _yaml(element, indent + 2).splitlines()
                    lines.append(f"{pad}  - {body[0].lstrip()}")
                    lines.extend(body[1:])
                else:
                    lines.append(f'{pad}  - "{element}"')
        elif isinstance(item, bool):
            lines.append(f"{pad}{key}: {'true' if item else 'false'}")
        elif isinstance(item, int):
            lines.append(f"{pad}{key}: {item}")
        else:
            lines.append(f'{pad}{key}: "{item}"')
    return "\n".join(lines)


def start_registry(
    *, auth: dict[str, Any] | None = None, tls: dict[str, str] | None = None,
    root: Path | None = None, timeout: float = 10.0, extra: dict[str, Any] | None = None,
) -> Registryd:
    """Start docker-registry on a free loopback port; return once it answers /v2/.
    `extra`: more top-level config sections (e.g. `notifications`). Without `root` it keeps
    its storage in a temporary directory that `stop()` removes."""
    if shutil.which(BINARY) is None:
        raise RuntimeError("docker-registry is not installed: run scripts/bootstrap.sh")
    owned = root is None
    root = Path(root or tempfile.mkdtemp(prefix="ebpm-registry-"))
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    http: dict[str, Any] = {"addr": f"127.0.0.1:{port}", "secret": "ebpm-test-secret"}
    if tls:
        http["tls"] = tls
    cfg: dict[str, Any] = {
        "version": "0.1",
        "log": {"level": "info", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(root / "storage")},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": http,
    }
    if auth:
        cfg["auth"] = auth
    cfg.update(extra or {})  # more top-level sections, e.g. notifications
    (root / "config.yml").write_text(_yaml(cfg) + "\n")
    log_path = root / "registry.log"
    with open(log_path, "wb") as log:
        env = dict(os.environ, OTEL_TRACES_EXPORTER="none")
        proc = subprocess.Popen(
            [BINARY, "serve", str(root / "config.yml")],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            preexec_fn=die_with_parent,
        )
    scheme = "https" if tls else "http"
    reg = Registryd(host=f"127.0.0.1:{port}", root=root, process=proc, scheme=scheme,
                    log_path=log_path, owned=owned)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            said = reg.log()
            reg.stop()
            raise RuntimeError(f"docker-registry exited early:\n{said}")
        try:
            with warnings.catch_warnings():  # (answering is all this asks, not whose cert)
                warnings.simplefilter("ignore", InsecureRequestWarning)
                requests.get(f"{reg.url}/v2/", timeout=0.5, verify=False)
            return reg
        except requests.RequestException:
            time.sleep(0.05)
    said = reg.log()
    reg.stop()
    raise RuntimeError(f"docker-registry did not answer within {timeout}s:\n{said}")
