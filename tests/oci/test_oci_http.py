"""ebpm.oci.http (h11 over a socket) against a raw loopback server that answers exactly as told:
connections kept and reused, a kept connection the server closed retried once on a fresh one,
chunked bodies, a body cut short, and ssl never imported for plain http."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

import pytest

from ebpm.oci.deadline import Clock
from ebpm.oci.http import Client, ProtocolError

Answer = Callable[[int, int], bytes | None]  # (connection number, request number on it)


class RawServer:
    """Reads each request's head and answers with the bytes `answer` gives (None: close the
    connection without answering; an answer saying `Connection: close` is followed by the
    close); counts connections."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn, self.connections),
                             daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        with conn:
            buf = b""
            n = 0
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                _, _, buf = buf.partition(b"\r\n\r\n")
                n += 1
                out = self.answer(number, n)
                if out is None:
                    return
                conn.sendall(out)
                if b"Connection: close" in out:
                    return

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Answer], RawServer]]:
    servers: list[RawServer] = []

    def start(answer: Answer) -> RawServer:
        servers.append(RawServer(answer))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def _clock() -> Clock:
    return Clock(deadline=10, min_rate=0, grace=10, timeout=5)


def _get(client: Client, url: str) -> tuple[int, bytes]:
    with client.request("GET", url, headers={}, body=None, clock=_clock()) as resp:
        return resp.status_code, resp.content


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


def test_connections_are_kept_and_reused(serve: Callable[[Answer], RawServer]) -> None:
    server = serve(lambda conn, n: OK)
    client = Client()
    assert [_get(client, f"{server.url}/x/{i}") for i in range(3)] == [(200, b"hello")] * 3
    assert server.connections == 1
    client.close()


def test_a_kept_connection_the_server_closed_is_retried_on_a_fresh_one(
    serve: Callable[[Answer], RawServer],
) -> None:
    # every connection answers its first request, then is dropped at the next one
    server = serve(lambda conn, n: OK if n == 1 else None)
    client = Client()
    assert _get(client, f"{server.url}/a") == (200, b"hello")
    assert _get(client, f"{server.url}/b") == (200, b"hello")
    assert server.connections == 2
    client.close()


def test_a_fresh_connection_closed_without_answer_is_an_error(
    serve: Callable[[Answer], RawServer],
) -> None:
    server = serve(lambda conn, n: None)
    with pytest.raises((ConnectionError, ProtocolError)):
        _get(Client(), f"{server.url}/a")
    assert server.connections == 1  # not retried by the client (the transport retries)


def test_chunked_body_and_connection_close(serve: Callable[[Answer], RawServer]) -> None:
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n")
    server = serve(lambda conn, n: chunked)
    client = Client()
    assert _get(client, f"{server.url}/c") == (200, b"hello")
    closing = serve(lambda conn, n: b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello")
    assert _get(client, f"{closing.url}/d") == (200, b"hello")  # a body up to the close


def test_a_body_cut_short_is_a_protocol_error(serve: Callable[[Answer], RawServer]) -> None:
    short = serve(lambda conn, n: b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n"
                                  b"Connection: close\r\n\r\nhello")
    client = Client()
    with client.request("GET", f"{short.url}/e", headers={}, body=None, clock=_clock()) as resp:
        with pytest.raises(ProtocolError):
            resp.content  # noqa: B018


def test_plain_http_never_imports_ssl(serve: Callable[[Answer], RawServer]) -> None:
    server = serve(lambda conn, n: OK)
    code = (
        "import sys\n"
        "from ebpm.oci.deadline import Clock\n"
        "from ebpm.oci.http import Client\n"
        f"r = Client().request('GET', {server.url + '/x'!r}, headers={{}}, body=None, "
        "clock=Clock(deadline=10, min_rate=0, grace=10, timeout=5))\n"
        "assert r.content == b'hello'\n"
        "bad = [m for m in ('ssl', 'http.client', 'email') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
