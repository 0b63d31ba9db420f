"""The HTTP client under `ebpm.oci.transport`: HTTP/1.1 over a plain socket (`ssl` imported
only for https), kept connections per host, proxies from the environment (CONNECT tunnels for
https), bodies framed by Content-Length, chunked or the close and decoded (gzip, deflate) at
most a chunk at a time, and every connect, send and recv bounded by the exchange's
`deadline.Clock`.

Why its own HTTP/1.1 and not requests, urllib3, http.client or h11: a client that sends one
request at a time and reads one answer needs only a status line, headers and three ways of
framing a body, and every library costs a cold pull more to import than the exchanges
themselves (http.client brings ssl and email.parser even for plain http; h11 brings
dataclasses); see "HTTP stack" in docs/architecture.md for the figures. Redirects, retries,
auth and caps are the transport's. This module knows nothing of registries.
"""

from __future__ import annotations

import os
import socket
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from collections.abc import Mapping
    from typing import Any

    from ebpm.oci.deadline import Clock

__all__ = ["Client", "Connection", "Response", "ProtocolError", "DecodeError", "Headers",
           "proxy_for", "split_url", "host_port", "connect",
           "parse_links", "tls_context", "tls_errors"]

_CA_ENV = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")  # honoured as requests did, unless told


def tls_errors() -> tuple[type[BaseException], ...]:
    """The exception types a TLS failure raises; none when no TLS was ever spoken (ssl is then
    not imported at all)."""
    import sys

    ssl = sys.modules.get("ssl")
    return (ssl.SSLError, ssl.CertificateError) if ssl is not None else ()


def not_tls(err: BaseException) -> bool:
    """Whether a TLS failure is the peer answering in plain text (an http server asked for
    https: OpenSSL's "wrong version number"), not a certificate it could not verify."""
    return getattr(err, "reason", None) == "WRONG_VERSION_NUMBER"


def tls_context(*, ca_bundle: str | None, insecure: bool) -> ssl.SSLContext:
    """Verify against `ca_bundle`, else $REQUESTS_CA_BUNDLE/$CURL_CA_BUNDLE, else the system's
    store; `insecure`: no verification at all."""
    import ssl

    if insecure and not ca_bundle:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    cafile = ca_bundle or next((os.environ[v] for v in _CA_ENV if os.environ.get(v)), None)
    ctx = ssl.create_default_context(cafile=cafile)
    return ctx


# what urllib.parse.urlsplit treats apart (strips, removes, splits a fragment or an IPv6
# literal at): a URL with none of these (and ASCII) is split by split_url itself
_SPECIAL = frozenset("#[]\x7f" + "".join(map(chr, range(33))))


def split_url(url: str) -> tuple[str, str, str, str]:
    """`urllib.parse.urlsplit(url)`'s scheme, netloc, path and query. An http(s) URL of
    printable ASCII without a fragment or an IPv6 literal (every URL a pull asks for) is split
    here, exactly as urlsplit splits it; any other goes through urlsplit. (urllib.parse, which
    brings ipaddress, costs a cold pull ~2 ms to import: a redirect, a proxy or a token realm
    imports it, a plain pull does not.)"""
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("http", "https") and url.isascii() and _SPECIAL.isdisjoint(url):
        end = len(rest)
        for mark in "/?":
            found = rest.find(mark)
            if 0 <= found < end:
                end = found
        path, _, query = rest[end:].partition("?")
        return scheme, rest[:end], path, query
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.scheme, parts.netloc, parts.path, parts.query


_NOT_PLAIN_NETLOC = _SPECIAL | frozenset("@%/?")  # + userinfo, a %zone, a path or query


def host_port(netloc: str, default: int) -> tuple[str, int]:
    """The host (lower case, `urlsplit`'s hostname, else `netloc` itself) and port (`default`
    when none or 0) of `host[:port]`, as urllib.parse reads them; without importing it unless
    the netloc has userinfo, an IPv6 literal, a %zone or a port that is not plainly one."""
    host, _, port = netloc.partition(":")
    if host and netloc.isascii() and _NOT_PLAIN_NETLOC.isdisjoint(netloc) and (
            not port or (port.isdigit() and int(port) <= 65535)):
        return host.lower(), (int(port) if port else 0) or default
    from urllib.parse import urlsplit

    target = urlsplit(f"//{netloc}")
    return target.hostname or netloc, target.port or default


def connect(host: str, port: int, timeout: float | None) -> socket.socket:
    """A TCP connection to `host:port`, Nagle off (a request's head and body go out at once).
    An ASCII name goes to the resolver as bytes: a str is first run through the idna codec
    (encodings.idna, stringprep, unicodedata: imports neither a pull nor an agent's client
    needs)."""
    name: str | bytes = host.encode("ascii") if host.isascii() else host
    sock = socket.create_connection((name, port), timeout=timeout)  # type: ignore[arg-type]
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def proxy_for(scheme: str, host: str) -> str | None:
    """The proxy URL for `scheme://host` from $https_proxy/$http_proxy/$all_proxy (either
    case), unless $no_proxy names the host (a name, a .domain suffix, host:port, or `*`);
    loopback addresses never go through a proxy."""
    from ebpm.oci.reference import is_loopback

    if is_loopback(host):
        return None
    env = {k.lower(): v for k, v in os.environ.items() if k.lower().endswith("_proxy") and v}
    proxy = env.get(f"{scheme}_proxy") or env.get("all_proxy")
    if not proxy:
        return None
    from urllib.parse import urlsplit

    name = (urlsplit(f"//{host}").hostname or host).lower()
    for item in env.get("no_proxy", "").split(","):
        item = item.strip().lower()
        if not item:
            continue
        if item == "*" or item == host.lower():
            return None
        bare = item.lstrip(".")
        if name == bare or name.endswith("." + bare):
            return None
    return proxy if "://" in proxy else f"http://{proxy}"


def parse_links(header: str) -> dict[str, dict[str, str]]:
    """A Link header as {rel: {"url": ..., params}} (as requests' `Response.links`)."""
    links: dict[str, dict[str, str]] = {}
    for part in header.split(","):
        url, _, params = part.strip().partition(";")
        url = url.strip().strip("<>").strip()
        if not url:
            continue
        link = {"url": url}
        for param in params.split(";"):
            key, sep, value = param.partition("=")
            if sep:
                link[key.strip().lower()] = value.strip().strip("'\"")
        links[link.get("rel") or url] = link
    return links


RECV = 64 * 1024  # bytes per recv
MAX_HEAD = 64 * 1024  # the most a response's status line and headers may take


class ProtocolError(Exception):
    """The server broke HTTP/1.1 (a malformed answer, a body shorter than announced)."""


class DecodeError(ProtocolError):
    """A gzip or deflate body that does not decompress."""


class Headers:
    """A response's headers: names case-insensitive; `get` gives the first value of a name
    (as http.client did), `get_all` every one."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._items: dict[str, list[str]] = {}
        for name, value in pairs:
            self._items.setdefault(name.lower(), []).append(value)

    def get(self, name: str, default: Any = None) -> Any:
        values = self._items.get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str) -> list[str]:
        return list(self._items.get(name.lower(), ()))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __getitem__(self, name: str) -> str:
        values = self._items.get(name.lower())
        if not values:
            raise KeyError(name)
        return values[0]

    def items(self) -> list[tuple[str, str]]:
        return [(k, v) for k, vs in self._items.items() for v in vs]


class Connection:
    """One connected socket (plain, TLS, or TLS through a proxy's tunnel) speaking HTTP/1.1 as
    a client, one exchange at a time: `send` a request's head and body, `read_head` the
    answer's status and headers (which sets up its body's framing: Content-Length, chunked, or
    up to the close), `read_body` until it gives b"" (`ended`), then `reusable` says whether
    another exchange may follow. Every socket operation is bounded by `clock` (an exchange's
    `deadline.Clock`; None: the socket's own timeout). Malformed answers raise ProtocolError;
    a head is capped at MAX_HEAD bytes, as is a chunk's framing line."""

    def __init__(self, sock: socket.socket, *, proxied: bool = False,
                 proxy_headers: dict[str, str] | None = None) -> None:
        self.sock = sock
        self.clock: Clock | None = None
        self.proxied = proxied  # plain http through a proxy: absolute URLs, proxy headers
        self.proxy_headers = proxy_headers or {}
        self._buf = b""  # received and not yet consumed
        self._framing = ""  # the answer's body: "length", "chunked", "close", or "" (ended)
        self._left = 0  # bytes left of the body ("length") or of the current chunk
        self._keep = True  # the connection can carry another exchange

    def _settle(self) -> None:
        if self.clock is not None:
            self.sock.settimeout(self.clock.budget())

    def send(self, method: str, target: str, headers: Mapping[str, str],
             body: bytes | None = None) -> None:
        """One request: its head in one piece, then the body as given (no copy of an upload)."""
        lines = [f"{method} {target} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if any(c in line for line in lines for c in _FORBIDDEN) or any(
                not name or name.strip() != name or ":" in name for name in headers):
            raise ProtocolError("a request header holds a forbidden character")
        text = "\r\n".join(lines) + "\r\n\r\n"
        try:
            head = text.encode("latin-1")
        except UnicodeEncodeError as err:
            raise ProtocolError("a request header is not latin-1 text") from err
        self._keep = True
        self._settle()
        try:
            if body and len(body) <= RECV:
                self.sock.sendall(head + body)
            else:
                self.sock.sendall(head)
                if body:
                    self.sock.sendall(body)
        except TimeoutError:
            if self.clock is not None:
                self.clock.expire(time.monotonic())
            raise

    def recv(self) -> bytes:
        clock = self.clock
        self._settle()
        try:
            data = self.sock.recv(RECV)
        except TimeoutError:
            if clock is not None:
                clock.expire(time.monotonic())
            raise
        if clock is not None:
            clock.received += len(data)
        return data

    def _more(self) -> None:
        data = self.recv()
        if not data:
            raise ProtocolError("the server closed the connection mid-answer")
        self._buf += data

    def read_head(self, method: str) -> tuple[int, str, Headers]:
        """The answer's status, reason and headers (1xx answers skipped); sets up its body."""
        while True:
            status, reason, headers, version = self._head()
            if not 100 <= status < 200 or status == 101:
                break
        if version != "HTTP/1.1" or "close" in (headers.get("Connection") or "").lower():
            self._keep = False
        self._left = 0
        encoding = headers.get_all("Transfer-Encoding")
        lengths = headers.get_all("Content-Length")
        if (method == "HEAD" or status in (204, 304) or status < 200
                or (method == "CONNECT" and 200 <= status < 300)):
            self._framing = ""
        elif encoding:
            if encoding[-1].split(",")[-1].strip().lower() != "chunked":
                raise ProtocolError(f"unsupported Transfer-Encoding {encoding[-1]!r}")
            self._framing = "chunked"
        elif lengths:
            values = {v.strip() for item in lengths for v in item.split(",")}
            if len(values) != 1 or not next(iter(values)).isdigit():
                raise ProtocolError(f"bad Content-Length {', '.join(lengths)!r}")
            self._left = int(values.pop())
            self._framing = "length" if self._left else ""
        else:
            self._framing = "close"
            self._keep = False
        return status, reason, headers

    def _head(self) -> tuple[int, str, Headers, str]:
        while True:
            crlf, lf = self._buf.find(b"\r\n\r\n"), self._buf.find(b"\n\n")
            if crlf >= 0 and (lf < 0 or crlf < lf):
                head, self._buf = self._buf[:crlf], self._buf[crlf + 4:]
                break
            if lf >= 0:
                head, self._buf = self._buf[:lf], self._buf[lf + 2:]
                break
            if len(self._buf) > MAX_HEAD:
                raise ProtocolError(f"an answer's head is longer than {MAX_HEAD} bytes")
            data = self.recv()
            if not data:
                if not self._buf.strip():
                    raise ConnectionResetError("the server closed the connection before "
                                               "answering")
                raise ProtocolError("the server closed the connection mid-answer")
            self._buf += data
        if len(head) > MAX_HEAD:
            raise ProtocolError(f"an answer's head is longer than {MAX_HEAD} bytes")
        lines = head.decode("latin-1").lstrip("\r\n").split("\n")
        version, _, rest = lines[0].rstrip("\r").partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise ProtocolError(f"not an HTTP/1.1 status line: {lines[0][:80]!r}")
        pairs: list[tuple[str, str]] = []
        for line in lines[1:]:
            line = line.rstrip("\r")
            if line[:1] in (" ", "\t") and pairs:  # an obsolete folded line continues a value
                pairs[-1] = (pairs[-1][0], f"{pairs[-1][1]} {line.strip()}")
                continue
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip() or " " in name:
                raise ProtocolError(f"malformed header line {line[:80]!r}")
            pairs.append((name, value.strip(" \t")))
        return int(code), reason.strip(), Headers(pairs), version

    def read_body(self) -> bytes:
        """The next raw bytes of the answer's body; b"" at its end."""
        framing = self._framing
        if framing == "length":
            if not self._buf:
                self._more()
            chunk, self._buf = self._buf[:self._left], self._buf[self._left:]
            self._left -= len(chunk)
            if not self._left:
                self._framing = ""
            return chunk
        if framing == "chunked":
            if not self._left:
                size = self._line()
                text = size.split(";", 1)[0].strip()
                try:
                    self._left = int(text, 16)
                except ValueError:
                    raise ProtocolError(f"bad chunk size {size[:40]!r}") from None
                if self._left < 0 or text[:1] in ("-", "+") or text.lower().startswith("0x"):
                    raise ProtocolError(f"bad chunk size {size[:40]!r}")
                if not self._left:  # the last chunk: trailers, then an empty line
                    while self._line():
                        pass
                    self._framing = ""
                    return b""
            if not self._buf:
                self._more()
            chunk, self._buf = self._buf[:self._left], self._buf[self._left:]
            self._left -= len(chunk)
            if not self._left and self._line():
                raise ProtocolError("a chunk longer than announced")
            return chunk
        if framing == "close":
            if self._buf:
                chunk, self._buf = self._buf, b""
                return chunk
            chunk = self.recv()
            if not chunk:
                self._framing = ""
            return chunk
        return b""

    def _line(self) -> str:
        """The next line of a chunked body's framing, without its end."""
        while True:
            end = self._buf.find(b"\n")
            if end >= 0:
                line, self._buf = self._buf[:end], self._buf[end + 1:]
                return line.rstrip(b"\r").decode("latin-1")
            if len(self._buf) > MAX_HEAD:
                raise ProtocolError("a chunk's framing line is too long")
            self._more()

    def ended(self) -> bool:
        """Whether the answer's body has been read to its end."""
        return not self._framing

    def reusable(self) -> bool:
        """At the end of an exchange: can the next request use this connection?"""
        return self._keep and not self._framing and not self._buf

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


_FORBIDDEN = ("\r", "\n", "\0")


class Response:
    """An answer whose body is read on demand: `read1(n)` gives at most n decoded bytes; at its
    end the connection goes back to the client for reuse, a body left unread closes it."""

    def __init__(self, conn: Connection, head: tuple[int, str, Headers], url: str,
                 release: Any) -> None:
        self._conn = conn
        self._release = release  # release(reusable: bool)
        self.url = url
        self.status_code, self.reason, self.headers = head
        self._content: bytes | None = None
        self._done = False
        self._pending = b""  # received body bytes not yet handed out (raw, before decoding)
        self._decoder: Any = None
        encoding = (self.headers.get("Content-Encoding") or "").strip().lower()
        if encoding in ("gzip", "x-gzip", "deflate"):
            self._decoder = _Decoder(encoding)
        if conn.ended():
            self._finish(reusable=True)  # no body (HEAD, 204, 304, length 0): reusable now

    @property
    def links(self) -> dict[str, dict[str, str]]:
        return parse_links(self.headers.get("Link") or "")

    def _raw_chunk(self) -> bytes:
        """The next raw body bytes; b"" at the body's end (the exchange is then finished)."""
        if self._pending:
            chunk, self._pending = self._pending, b""
            return chunk
        while True:
            chunk = self._conn.read_body()
            if chunk:
                return chunk
            if self._conn.ended():
                self._finish(reusable=True)
                return b""

    def read1(self, n: int) -> bytes:
        """Up to `n` bytes of the (decoded) body; b"" at its end."""
        if self._done and not self._pending:
            return b""
        decoder = self._decoder
        while True:
            if decoder is not None and decoder.unconsumed_tail:
                out = decoder.decompress(decoder.unconsumed_tail, n)
            else:
                chunk = self._raw_chunk()
                if not chunk:
                    return decoder.flush() if decoder is not None else b""
                if decoder is None:
                    if len(chunk) > n:
                        chunk, self._pending = chunk[:n], chunk[n:]
                    return chunk
                out = decoder.decompress(chunk, n)
            if out:
                return out

    @property
    def content(self) -> bytes:
        """The whole body (uncapped: the transport reads bodies within caps first)."""
        if self._content is None:
            parts = []
            while chunk := self.read1(1 << 16):
                parts.append(chunk)
            self._content = b"".join(parts)
        return self._content

    def json(self) -> Any:
        import json

        return json.loads(self.content)

    def _finish(self, *, reusable: bool) -> None:
        if not self._done:
            self._done = True
            self._release(reusable and self._conn.reusable())

    def close(self) -> None:
        """Done with the answer: a body not read to its end closes the connection."""
        if not self._done:
            self._pending = b""
            self._finish(reusable=False)

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Decoder:
    """A `Content-Encoding: gzip` or `deflate` body decoded as it comes (zlib, imported only
    for such a body); `deflate` is zlib-wrapped by the spec, raw deflate by some servers. A
    body that does not decompress is a DecodeError."""

    def __init__(self, encoding: str) -> None:
        import zlib

        self._zlib = zlib
        self._first = encoding == "deflate"  # the wrapping is told by the first bytes
        self._obj = zlib.decompressobj(zlib.MAX_WBITS if self._first else 16 + zlib.MAX_WBITS)

    @property
    def unconsumed_tail(self) -> bytes:
        return self._obj.unconsumed_tail

    def decompress(self, data: bytes, n: int) -> bytes:
        zlib = self._zlib
        try:
            if self._first:
                self._first = False
                try:
                    return self._obj.decompress(data, n)
                except zlib.error:
                    self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
            return self._obj.decompress(data, n)
        except zlib.error as err:
            raise DecodeError(f"the compressed body is damaged: {err}") from err

    def flush(self) -> bytes:
        try:
            return self._obj.flush()
        except self._zlib.error as err:
            raise DecodeError(f"the compressed body is damaged: {err}") from err


class Client:
    """Keeps connections per (scheme, host) for reuse, safely across threads; sends one request
    (no redirects, no retries: those are the transport's) under a clock."""

    def __init__(self, *, ca_bundle: str | None = None, insecure: bool = False,
                 user_agent: str = "") -> None:
        self.ca_bundle = ca_bundle
        self.insecure = insecure
        self.user_agent = user_agent
        self._tls: ssl.SSLContext | None = None
        self._idle: dict[tuple[str, str], list[Connection]] = {}
        import threading  # (a Connection alone, the agent's client's, needs none)

        self._lock = threading.Lock()

    def _context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = tls_context(ca_bundle=self.ca_bundle, insecure=self.insecure)
        return self._tls

    def _tls_wrap(self, sock: socket.socket, host: str, clock: Clock) -> socket.socket:
        try:
            sock.settimeout(clock.budget())
            return self._context().wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise

    def _new(self, scheme: str, netloc: str, clock: Clock) -> Connection:
        proxy = proxy_for(scheme, netloc)
        host, port = host_port(netloc, 443 if scheme == "https" else 80)
        if proxy is None:
            sock = connect(host, port, clock.budget())
            if scheme == "https":
                sock = self._tls_wrap(sock, host, clock)
            return Connection(sock)
        from urllib.parse import unquote, urlsplit

        p = urlsplit(proxy)
        headers = {}
        if p.username is not None:
            import base64

            pair = f"{unquote(p.username)}:{unquote(p.password or '')}".encode()
            headers["Proxy-Authorization"] = "Basic " + base64.b64encode(pair).decode()
        proxy_port = p.port or (443 if p.scheme == "https" else 80)
        sock = connect(p.hostname or "", proxy_port, clock.budget())
        if scheme == "http":  # plain http: the proxy gets absolute URLs
            return Connection(sock, proxied=True, proxy_headers=headers)
        # https: a CONNECT tunnel, then TLS end to end with the registry
        tunnel = Connection(sock)
        tunnel.clock = clock
        authority = f"{host}:{port}"
        try:
            tunnel.send("CONNECT", authority, {"Host": authority, **headers})
            try:
                status = tunnel.read_head("CONNECT")[0]
            except ConnectionResetError:
                status = 0
            if not 200 <= status < 300:
                raise OSError(f"the proxy refused the tunnel to {authority}: "
                              f"{status or 'no answer'}")
            if not tunnel.reusable():
                raise ProtocolError("the proxy sent data before the tunnel was open")
        except BaseException:
            sock.close()
            raise
        return Connection(self._tls_wrap(sock, host, clock))

    def request(self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None,
                clock: Clock) -> Response:
        scheme, netloc, path, query = split_url(url)
        key = (scheme, netloc)
        target = path or "/"
        if query:
            target += "?" + query
        hdrs = {"Host": netloc, "User-Agent": self.user_agent, "Accept-Encoding": "identity"}
        hdrs.update(headers)
        if body is not None:
            hdrs["Content-Length"] = str(len(body))
        elif method in ("POST", "PUT", "PATCH"):
            hdrs["Content-Length"] = "0"
        for attempt in (0, 1):
            with self._lock:
                idle = self._idle.get(key)
                conn = idle.pop() if idle else None
            reused = conn is not None
            if conn is None:
                conn = self._new(scheme, netloc, clock)
            conn.clock = clock
            path = target
            sent = dict(hdrs)
            if conn.proxied:
                path = f"{scheme}://{netloc}{target}"
                sent.update(conn.proxy_headers)
            try:
                conn.send(method, path, sent, body)
                head = conn.read_head(method)
            except (ConnectionResetError, BrokenPipeError, ProtocolError):
                conn.close()
                if reused and attempt == 0 and clock.reason is None:
                    continue  # a kept connection the server had closed: once more, fresh
                raise
            except BaseException:
                conn.close()
                raise
            break

        assert conn is not None
        kept = conn

        def release(reusable: bool) -> None:
            kept.clock = None
            if not reusable:
                kept.close()
                return
            with self._lock:
                self._idle.setdefault(key, []).append(kept)

        return Response(conn, head, url, release)

    def close(self) -> None:
        with self._lock:
            conns = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for conn in conns:
            conn.close()
