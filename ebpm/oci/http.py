"""The HTTP client under `ebpm.oci.transport`: the standard library's http.client and ssl, kept
connections per host, proxies from the environment, bodies decoded (gzip, deflate) at most a
chunk at a time, and every socket operation bounded by the exchange's `deadline.Clock`.

Why not requests: importing requests costs more than the rest of a pull (see "HTTP stack" in
docs/architecture.md for the figures); ebpm needs none of what it adds over http.client that
the transport does not already do itself (redirects, retries, auth and caps are the
transport's). This module knows nothing of registries.
"""

from __future__ import annotations

import http.client
import os
import threading
import zlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from ebpm.oci.deadline import Clock, ClockedSocket

if TYPE_CHECKING:
    import ssl

__all__ = ["Client", "Response", "proxy_for", "parse_links", "tls_context"]

_CA_ENV = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")  # honoured as requests did, unless told


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


class _Clocked:
    """http.client connection behaviour shared by plain and TLS connections: every connect,
    send and recv bounded by the current exchange's clock."""

    clock: Clock | None = None
    proxied = False  # through a proxy: plain http sends the absolute URL (and proxy_headers)
    proxy_headers: dict[str, str] = {}  # noqa: RUF012
    timeout: float | None

    def connect(self) -> None:
        if self.clock is not None:
            self.timeout = self.clock.budget()
        super().connect()  # type: ignore[misc]

    def send(self, data: Any) -> None:
        sock = getattr(self, "sock", None)
        if sock is not None and self.clock is not None:
            self.clock.settle(sock)
        super().send(data)  # type: ignore[misc]

    def response_class(  # type: ignore[override]
        self, sock: Any, *args: Any, **kwargs: Any
    ) -> http.client.HTTPResponse:
        if self.clock is not None:
            sock = ClockedSocket(sock, self.clock)
        return http.client.HTTPResponse(sock, *args, **kwargs)


class _Connection(_Clocked, http.client.HTTPConnection):  # type: ignore[misc]
    pass


class _TLSConnection(_Clocked, http.client.HTTPSConnection):  # type: ignore[misc]
    pass


class Response:
    """An answer whose body is read on demand: `read1(n)` gives at most n decoded bytes; at its
    end the connection goes back to the client for reuse, a body left unread closes it."""

    def __init__(self, raw: http.client.HTTPResponse, url: str, release: Any) -> None:
        self._raw = raw
        self._release = release  # release(reusable: bool)
        self.url = url
        self.status_code = raw.status
        self.reason = raw.reason
        self.headers = raw.headers
        self._content: bytes | None = None
        self._done = False
        self._decoder: Any = None
        encoding = (raw.headers.get("Content-Encoding") or "").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._decoder = _Deflate()
        if raw.length == 0 or raw._method == "HEAD":  # type: ignore[attr-defined]
            self._finish(reusable=True)  # no body: over already, the connection reusable

    @property
    def links(self) -> dict[str, dict[str, str]]:
        return parse_links(self.headers.get("Link") or "")

    def read1(self, n: int) -> bytes:
        """Up to `n` bytes of the (decoded) body; b"" at its end."""
        if self._done:
            return b""
        decoder = self._decoder
        while True:
            if decoder is not None and decoder.unconsumed_tail:
                out = decoder.decompress(decoder.unconsumed_tail, n)
            else:
                chunk = self._raw.read1(n)
                if not chunk:
                    out = decoder.flush() if decoder is not None else b""
                    self._finish(reusable=True)
                    return out
                out = decoder.decompress(chunk, n) if decoder is not None else chunk
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
            reusable = reusable and not self._raw.will_close
            self._raw.close()  # http.client then lets the connection send the next request
            self._release(reusable)

    def close(self) -> None:
        """Done with the answer: a body not read to its end closes the connection."""
        if not self._done:
            self._raw.close()
            self._finish(reusable=False)

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Deflate:
    """`Content-Encoding: deflate` is zlib-wrapped by the spec, raw deflate by some servers."""

    def __init__(self) -> None:
        self._obj = zlib.decompressobj()
        self._first = True

    @property
    def unconsumed_tail(self) -> bytes:
        return self._obj.unconsumed_tail

    def decompress(self, data: bytes, n: int) -> bytes:
        if self._first:
            self._first = False
            try:
                return self._obj.decompress(data, n)
            except zlib.error:
                self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
        return self._obj.decompress(data, n)

    def flush(self) -> bytes:
        return self._obj.flush()


class Client:
    """Keeps connections per (scheme, host) for reuse, safely across threads; sends one request
    (no redirects, no retries: those are the transport's) under a clock."""

    def __init__(self, *, ca_bundle: str | None = None, insecure: bool = False,
                 user_agent: str = "") -> None:
        self.ca_bundle = ca_bundle
        self.insecure = insecure
        self.user_agent = user_agent
        self._tls: ssl.SSLContext | None = None
        self._idle: dict[tuple[str, str], list[_Connection | _TLSConnection]] = {}
        self._lock = threading.Lock()

    def _context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = tls_context(ca_bundle=self.ca_bundle, insecure=self.insecure)
        return self._tls

    def _new(self, scheme: str, netloc: str) -> _Connection | _TLSConnection:
        proxy = proxy_for(scheme, netloc)
        target = urlsplit(f"//{netloc}")
        port = target.port or (443 if scheme == "https" else 80)
        host = target.hostname or netloc
        conn: _Connection | _TLSConnection
        if proxy is None:
            if scheme == "https":
                return _TLSConnection(host, port, context=self._context())
            return _Connection(host, port)
        p = urlsplit(proxy)
        headers = {}
        if p.username is not None:
            import base64

            pair = f"{unquote(p.username)}:{unquote(p.password or '')}".encode()
            headers["Proxy-Authorization"] = "Basic " + base64.b64encode(pair).decode()
        proxy_port = p.port or (443 if p.scheme == "https" else 80)
        if scheme == "https":  # a CONNECT tunnel, TLS end to end with the registry
            conn = _TLSConnection(p.hostname or "", proxy_port, context=self._context())
            conn.set_tunnel(host, port, headers=headers)
        else:  # plain http: the proxy gets the absolute URL
            conn = _Connection(p.hostname or "", proxy_port)
            conn.proxy_headers = headers
        conn.proxied = True
        return conn

    def request(self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None,
                clock: Clock) -> Response:
        parts = urlsplit(url)
        scheme, netloc = parts.scheme, parts.netloc
        key = (scheme, netloc)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        hdrs = {"User-Agent": self.user_agent, "Accept-Encoding": "identity"}
        hdrs.update(headers)
        for attempt in (0, 1):
            with self._lock:
                idle = self._idle.get(key)
                conn = idle.pop() if idle else None
            reused = conn is not None
            if conn is None:
                conn = self._new(scheme, netloc)
            conn.clock = clock
            path = target
            if conn.proxied and scheme == "http":
                path = f"{scheme}://{netloc}{target}"
                hdrs.update(conn.proxy_headers)
            try:
                conn.request(method, path, body=body, headers=hdrs)
                raw = conn.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
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
            conn = kept
            conn.clock = None
            if not reusable:
                conn.close()
                return
            with self._lock:
                self._idle.setdefault(key, []).append(conn)

        return Response(raw, url, release)

    def close(self) -> None:
        with self._lock:
            conns = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for conn in conns:
            conn.close()
