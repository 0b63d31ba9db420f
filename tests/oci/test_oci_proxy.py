"""Proxies from the environment (issue 18: the stdlib HTTP stack keeps them working): plain
http through an HTTP proxy (absolute URLs, Proxy-Authorization from the proxy URL), https
through a CONNECT tunnel with TLS verified end to end, $no_proxy, and loopback never proxied.

The registry is reached by a name only the proxy resolves, so a request that bypassed the
proxy could not have succeeded."""

from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from ebpm.errors import UnreachableError
from ebpm.oci.remote import Registry
from tests.oci.conftest import PROXIED_NAME, TLSRegistry
from tests.registryd import Registryd


@dataclass
class Proxy:
    """A forward proxy on loopback: CONNECT tunnels and absolute-URL requests, both to
    127.0.0.1 whatever name they ask for; records what it was asked."""

    sock: socket.socket = field(default_factory=socket.socket)
    seen: list[str] = field(default_factory=list)
    auth: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://user:p%40ss@127.0.0.1:{self.sock.getsockname()[1]}"

    def start(self) -> Proxy:
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self.sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(65536)
                if not chunk:
                    return
                head += chunk
            text, _, rest = head.partition(b"\r\n\r\n")
            lines = text.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ")
            self.seen.append(f"{method} {target}")
            self.auth += [v for k, _, v in (x.partition(": ") for x in lines[1:])
                          if k.lower() == "proxy-authorization"]
            if method == "CONNECT":
                port = int(target.rpartition(":")[2])
                upstream = socket.create_connection(("127.0.0.1", port))
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                first = rest
            else:  # absolute URL: one request per connection, sent on as origin-form
                hostport, _, path = target.removeprefix("http://").partition("/")
                port = int(hostport.rpartition(":")[2])
                upstream = socket.create_connection(("127.0.0.1", port))
                kept = [x for x in lines[1:] if not x.lower().startswith(
                    ("proxy-authorization", "connection"))]
                first = ("\r\n".join([f"{method} /{path} {version}", *kept,
                                      "Connection: close"]) + "\r\n\r\n").encode() + rest
            with upstream:
                if first:
                    upstream.sendall(first)
                _pipe(client, upstream)


def _pipe(a: socket.socket, b: socket.socket) -> None:
    def copy(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    t = threading.Thread(target=copy, args=(b, a), daemon=True)
    t.start()
    copy(a, b)
    t.join(10)


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    p = Proxy().start()
    yield p
    p.stop()


def _port(host: str) -> str:
    return host.rpartition(":")[2]


def test_plain_http_goes_through_the_proxy(proxy: Proxy, registry: Registryd,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", proxy.url)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    host = f"{PROXIED_NAME}:{_port(registry.host)}"
    client = Registry(host, insecure=True)
    client.ping()
    assert proxy.seen and proxy.seen[0] == f"GET http://{host}/v2/"
    assert proxy.auth[0] == "Basic " + base64.b64encode(b"user:p@ss").decode()


def test_https_tunnels_through_the_proxy_with_tls_verified(
        proxy: Proxy, tls_registry: TLSRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    host = f"{PROXIED_NAME}:{_port(tls_registry.host)}"
    Registry(host, ca_bundle=tls_registry.ca_file).ping()
    assert proxy.seen == [f"CONNECT {host}"]
    with pytest.raises(Exception, match="TLS verification"):  # no CA: refused through it too
        Registry(host, ca_bundle=None).ping()


def test_no_proxy_and_loopback_bypass_the_proxy(proxy: Proxy, registry: Registryd,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    Registry(registry.host).ping()  # loopback: straight there
    monkeypatch.setenv("NO_PROXY", "localhost,.proxied.test")
    with pytest.raises(UnreachableError, match="unknown host"):  # not proxied: unresolvable
        Registry(f"{PROXIED_NAME}:{_port(registry.host)}", insecure=True, retries=0).ping()
    assert proxy.seen == []
