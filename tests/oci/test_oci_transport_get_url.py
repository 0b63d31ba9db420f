"""Plain URL downloads go through the transport: User-Agent, TLS settings, offline, a size cap."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ebpm import __version__
from ebpm.access import RegistryAccess, get_url
from ebpm.errors import NotFoundError, OfflineError, TooLargeError, UnreachableError

BODY = b"\x7fELF" + b"x" * 1000


@pytest.fixture
def server() -> Iterator[tuple[str, list[str]]]:
    agents: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            agents.append(self.headers.get("User-Agent", ""))
            if self.path == "/moved":
                self.send_response(302)
                self.send_header("Location", "/x.bpf.o")
                self.end_headers()
                return
            if self.path != "/x.bpf.o":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", agents
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_get_url(server: tuple[str, list[str]]) -> None:
    base, agents = server
    access = RegistryAccess()
    assert get_url(f"{base}/x.bpf.o", access) == BODY
    assert agents[-1] == f"ebpm/{__version__}"
    assert get_url(f"{base}/moved", access) == BODY  # redirects are followed
    with pytest.raises(NotFoundError):
        get_url(f"{base}/missing.bpf.o", access)
    with pytest.raises(TooLargeError, match="more than the 100 B cap"):
        get_url(f"{base}/x.bpf.o", access, max_bytes=100)
    seen = len(agents)
    with pytest.raises(OfflineError):
        get_url(f"{base}/x.bpf.o", RegistryAccess(offline=True))
    assert len(agents) == seen  # no request was made


def test_unreachable_url_names_the_url() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UnreachableError, match=f"127.0.0.1:{port}/x.bpf.o: connection refused"):
        get_url(f"http://127.0.0.1:{port}/x.bpf.o", RegistryAccess())
