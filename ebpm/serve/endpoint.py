"""Where the agent listens and how clients find it: the Unix socket, TCP addresses, the rules.

By default the agent listens on a Unix socket only (mode 0600 in a 0700 directory). A TCP
address needs a bearer token, and TLS unless the address is loopback.
"""

from __future__ import annotations

import os
import socket

from ebpm.errors import UsageError
from ebpm.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "Endpoint",
    "default_socket",
    "parse_endpoint",
    "is_loopback",
    "check_tcp_policy",
    "unix_listener",
    "tcp_listener",
]


@record
class Endpoint:
    """A Unix socket path, or a TCP host and port (with TLS when `tls`)."""

    path: str = ""
    host: str = ""
    port: int = 0
    tls: bool = False

    @property
    def is_unix(self) -> bool:
        return bool(self.path)

    def __str__(self) -> str:
        if self.path:
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"


def default_socket() -> Path:
    """$EBPM_AGENT_SOCKET, else /run/ebpm/agent.sock for root, else in $XDG_RUNTIME_DIR."""
    from pathlib import Path  # (a client given an address imports no pathlib)

    env = os.environ.get("EBPM_AGENT_SOCKET")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/run/ebpm/agent.sock")
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/ebpm-{os.geteuid()}"
    return Path(runtime) / "ebpm" / "agent.sock"


def parse_endpoint(text: str) -> Endpoint:
    """`unix:/path`, `/path`, `HOST:PORT`, `http://HOST:PORT` or `https://HOST:PORT`."""
    value = text.strip()
    if value.startswith("unix:"):
        return Endpoint(path=value[5:])
    if value.startswith("/") or value.startswith("./"):
        return Endpoint(path=value)
    tls = False
    for scheme in ("http://", "https://"):
        if value.startswith(scheme):
            tls = scheme == "https://"
            value = value[len(scheme):].rstrip("/")
    host, sep, port_text = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise UsageError(f"agent address {text!r}: expected HOST:PORT or a socket path",
                         hint="for example 127.0.0.1:7878, https://node1:7878 or "
                         "unix:/run/ebpm/agent.sock")
    return Endpoint(host=host, port=int(port_text), tls=tls)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        import ipaddress  # (listeners only: no client needs it)

        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_tcp_policy(endpoint: Endpoint, *, token: str | None, tls: bool) -> None:
    """TCP needs a bearer token, and TLS unless the address is loopback."""
    if endpoint.is_unix:
        return
    if not token:
        raise UsageError(f"listen {endpoint}: TCP needs a bearer token",
                         hint="pass --token-file FILE (or set EBPM_AGENT_TOKEN)")
    if not tls and not is_loopback(endpoint.host):
        raise UsageError(f"listen {endpoint}: a non-loopback address needs TLS",
                         hint="pass --tls-cert FILE --tls-key FILE, or listen on 127.0.0.1")


def unix_listener(path: Path) -> socket.socket:
    """A listening Unix socket at `path`, mode 0600, its directory created 0700 if missing
    (only that one: a path whose directory's parent is missing is refused, not made).

    A stale socket file (nobody listening) is replaced; a live one is an error."""
    try:
        path.parent.mkdir(exist_ok=True, mode=0o700)
    except FileNotFoundError:
        raise UsageError(f"{path}: no directory {path.parent.parent} to make its directory in",
                         hint="create it, or pass another --socket") from None
    if path.exists() or path.is_symlink():
        import stat

        st = path.lstat()
        if not stat.S_ISSOCK(st.st_mode):
            raise UsageError(f"{path}: exists and is not a socket",
                             hint="remove it or pass another --socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # stale: no agent behind it
        else:
            raise UsageError(f"{path}: an agent is already listening there",
                             hint="stop it first, or pass another --socket")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # created 0600: no window in which others could connect
    try:
        sock.bind(str(path))
    except OSError as err:
        sock.close()
        raise UsageError(f"{path}: cannot listen: {err.strerror}") from err
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(128)
    sock.setblocking(False)
    return sock


def tcp_listener(endpoint: Endpoint) -> socket.socket:
    family = socket.AF_INET6 if ":" in endpoint.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((endpoint.host, endpoint.port))
    except OSError as err:
        sock.close()
        raise UsageError(f"listen {endpoint}: {err.strerror}",
                         hint="pick another port or address") from err
    sock.listen(128)
    sock.setblocking(False)
    return sock
