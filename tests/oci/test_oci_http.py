"""ebpm.oci.http (its own HTTP/1.1 over a socket) against a raw loopback server that answers
exactly as told: connections kept and reused, a kept connection the server closed retried once
on a fresh one, chunked bodies, a body cut short, informational answers, bodiless answers,
malformed framing refused, header injection refused, and ssl never imported for plain http."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ebpm.oci.deadline import Clock
from ebpm.oci.http import Client, ProtocolError, host_port, split_url

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


def test_informational_answers_are_skipped_and_lf_only_heads_read(
    serve: Callable[[Answer], RawServer],
) -> None:
    server = serve(lambda conn, n: b"HTTP/1.1 100 Continue\r\n\r\n" + OK if n == 1
                   else b"HTTP/1.1 200 OK\nContent-Length: 2\nX-A: 1\n\nhi")
    client = Client()
    assert _get(client, f"{server.url}/a") == (200, b"hello")
    with client.request("GET", f"{server.url}/b", headers={}, body=None, clock=_clock()) as r:
        assert (r.status_code, r.content, r.headers["x-a"]) == (200, b"hi", "1")
    assert server.connections == 1
    client.close()


def test_bodiless_answers_keep_the_connection(serve: Callable[[Answer], RawServer]) -> None:
    # HEAD announces a length it does not send; 204 and 304 have no body
    answers = {1: b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n",
               2: b"HTTP/1.1 204 No Content\r\n\r\n",
               3: b"HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n", 4: OK}
    server = serve(lambda conn, n: answers[n])
    client = Client()
    for method, status in (("HEAD", 200), ("GET", 204), ("GET", 304), ("GET", 200)):
        with client.request(method, f"{server.url}/x", headers={}, body=None,
                            clock=_clock()) as r:
            assert r.status_code == status
            assert r.content == (b"hello" if status == 200 and method == "GET" else b"")
    assert server.connections == 1
    client.close()


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nbad header\r\n\r\nhello",
    b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
])
def test_malformed_answers_are_protocol_errors(serve: Callable[[Answer], RawServer],
                                               answer: bytes) -> None:
    server = serve(lambda conn, n: answer + b"Connection: close")
    with pytest.raises(ProtocolError):
        _get(Client(), f"{server.url}/x")


def test_a_header_with_a_line_break_is_never_sent(serve: Callable[[Answer], RawServer]) -> None:
    asked: list[int] = []
    server = serve(lambda conn, n: asked.append(n) or OK)
    with pytest.raises(ProtocolError):
        Client().request("GET", f"{server.url}/x", headers={"X-T": "a\r\nX-Evil: 1"},
                         body=None, clock=_clock())
    assert asked == []


def test_a_head_without_end_is_capped(serve: Callable[[Answer], RawServer]) -> None:
    server = serve(lambda conn, n: b"HTTP/1.1 200 OK\r\n" + b"X: " + b"a" * 70000 + b"\r\n")
    with pytest.raises(ProtocolError, match="longer than"):
        _get(Client(), f"{server.url}/x")


def test_a_chunk_framing_line_without_end_is_capped(serve: Callable[[Answer], RawServer]) -> None:
    server = serve(lambda conn, n: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                   + b"1" * 70000)
    with pytest.raises(ProtocolError, match="too long"):
        _get(Client(), f"{server.url}/x")


def test_bytes_beyond_the_announced_length_are_not_taken_for_the_next_answer(
    serve: Callable[[Answer], RawServer],
) -> None:
    # 5 bytes announced, 10 sent: the body is the first 5; the connection is not reused
    # (the rest would otherwise be read as the next request's answer)
    server = serve(lambda conn, n: b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloWORLD")
    client = Client()
    assert _get(client, f"{server.url}/a") == (200, b"hello")
    assert _get(client, f"{server.url}/b") == (200, b"hello")
    assert server.connections == 2
    client.close()


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_damaged_compressed_body_is_a_decode_error(serve: Callable[[Answer], RawServer],
                                                     encoding: str) -> None:
    """zlib is imported for such a body only; what does not decompress is a DecodeError
    (the transport reports it as a damaged body)."""
    from ebpm.oci.http import DecodeError

    body = b"\x1f\x8b\x08\x00garbage, not gzip" if encoding == "gzip" else b"\xffnot deflate"
    server = serve(lambda conn, n: b"HTTP/1.1 200 OK\r\nContent-Encoding: " + encoding.encode()
                   + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    with pytest.raises(DecodeError):
        _get(Client(), f"{server.url}/x")


def test_a_gzip_body_is_decoded(serve: Callable[[Answer], RawServer]) -> None:
    import gzip

    body = gzip.compress(b"hello " * 1000)
    server = serve(lambda conn, n: b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n"
                   b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert _get(Client(), f"{server.url}/x") == (200, b"hello " * 1000)


_URL_PARTS = st.sampled_from(["http", "https", "HTTP", "ftp", "://", ":", "/", "//", "?", "#",
                              "@", "[", "]", "::1", "%", "%2F", "localhost", "127.0.0.1",
                              "Reg.Example", ":5000", ":0", ":99999", ":x", "v2", "a=b", "&",
                              " ", "\t", "\n", "\x00", "\x7f", "é", "sha256:ab", "user:pw"])
_URLS = st.one_of(
    st.lists(_URL_PARTS, max_size=10).map("".join),
    st.tuples(st.sampled_from(["http://", "https://"]), st.lists(_URL_PARTS, max_size=8)
              .map("".join)).map("".join),
    st.text(max_size=30),
)


@given(_URLS)
@example("http://127.0.0.1:5000/v2/x/manifests/1.0.0")
@example("https://reg.example/v2/x/blobs/sha256:ab?digest=sha256:cd&_state=x")
@example("http://[::1]:5000/v2/")
@example("http://host#frag?x")
def test_split_url_splits_as_urlsplit_does(url: str) -> None:
    """The URLs a pull makes are split by ebpm.oci.http (no urllib.parse import), exactly as
    urllib.parse.urlsplit splits them; and so is anything else (through urlsplit)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        with pytest.raises(ValueError):
            split_url(url)
        return
    assert split_url(url) == (parts.scheme, parts.netloc, parts.path, parts.query)


@given(st.one_of(st.lists(_URL_PARTS, max_size=6).map("".join), st.text(max_size=20)))
@example("Reg.Example:5000")
@example("localhost:")
@example("host:0")
@example("user:pw@host:5000")
@example("[::1]:5000")
@example("Host%Zone")
def test_host_port_reads_a_netloc_as_urlsplit_does(netloc: str) -> None:
    from urllib.parse import urlsplit

    try:
        target = urlsplit(f"//{netloc}")
        want = (target.hostname or netloc, target.port or 80)
    except ValueError:
        with pytest.raises(ValueError):
            host_port(netloc, 80)
        return
    assert host_port(netloc, 80) == want
