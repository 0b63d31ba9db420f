"""`ebpm hub serve`: serve the built site, and keep it fresh from registry notifications.

The CNCF registry posts an envelope of events to each `notifications.endpoints` URL on every
push, pull and delete. Here they arrive at `POST /-/events` with the shared secret as
`Authorization: Bearer SECRET` (compared in constant time; without a configured secret the
endpoint refuses everything). The answer comes at once; a worker thread gathers the repositories
named by manifest pushes and deletes for a moment, refreshes only those in the index, and
rebuilds only the pages that show them (ebpm.hub.site.affected_by) and the explore page.

The site is served with the same Content-Security-Policy as its <meta> tag, plus
`frame-ancestors 'none'`, `nosniff` and no-referrer. Only files under the site directory are
served; nothing else of the machine is reachable.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from ebpm.hub.crawl import Source
from ebpm.hub.site import CSP

if TYPE_CHECKING:
    from ebpm.access import RegistryAccess

__all__ = ["HubServer", "EVENTS_PATH", "repositories_of", "Rebuild"]

log = logging.getLogger("ebpm.hub")

EVENTS_PATH = "/-/events"
MAX_EVENTS_BODY = 1024 * 1024
REQUEST_TIMEOUT = 10.0  # seconds a connection may stall
_SETTLE = 0.1  # seconds to gather events that arrive together (a push is several events)
_MANIFEST_TYPES = {
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}
_TYPES = {
    ".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml",
    ".json": "application/json", ".png": "image/png",
}
HEADERS = {
    "Content-Security-Policy": CSP + "; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True)
class Rebuild:
    """One rebuild after notifications: what was asked for, what changed, how long it took."""

    repositories: tuple[str, ...]
    pages: tuple[str, ...]
    seconds: float
    error: str = ""


def repositories_of(envelope: Any, registries: Sequence[str], *,
                    registry: str = "") -> set[str]:
    """registry/repository of every manifest push or delete in a notification envelope.

    The registry is `registry` when the endpoint URL names it (`?registry=HOST`), else the
    event's request host when that is one of `registries`, else the only one of `registries`."""
    events = envelope.get("events") if isinstance(envelope, dict) else None
    out: set[str] = set()
    for event in events if isinstance(events, list) else []:
        if not isinstance(event, dict) or event.get("action") not in ("push", "delete"):
            continue
        target = event.get("target")
        if not isinstance(target, dict) or not isinstance(target.get("repository"), str):
            continue
        media_type = target.get("mediaType") or ""
        if event["action"] == "push" and media_type not in _MANIFEST_TYPES:
            continue  # a blob: the manifest's own event follows
        host = registry
        if not host:
            request = event.get("request")
            asked = request.get("host", "") if isinstance(request, dict) else ""
            if asked in registries:
                host = asked
            elif len(set(registries)) == 1:
                host = registries[0]
        if host:
            out.add(f"{host}/{target['repository']}")
    return out


@dataclass
class HubServer:
    """The preview server and its notification worker."""

    site: Path
    sources: Sequence[Source]
    host: str = "127.0.0.1"
    port: int = 8080
    secret: str = ""
    access: RegistryAccess | None = None
    on_rebuild: Callable[[Rebuild], None] = lambda _: None
    _queue: queue.Queue[set[str]] = field(default_factory=queue.Queue)
    _httpd: ThreadingHTTPServer | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        text = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://{'[' + text + ']' if ':' in text else text}:{port}"

    def start(self) -> None:
        """Bind the socket and start the worker (serve_forever() then answers requests)."""
        self._httpd = ThreadingHTTPServer((self.host, self.port), _handler(self))
        self._httpd.daemon_threads = True
        threading.Thread(target=self._work, name="hub-rebuild", daemon=True).start()

    def serve_forever(self) -> None:
        assert self._httpd is not None
        try:
            self._httpd.serve_forever(poll_interval=0.2)
        finally:
            self._stop.set()
            self._httpd.server_close()

    def shutdown(self) -> None:
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()

    def shutdown_soon(self) -> None:
        """Stop serving from a signal handler (shutdown() itself would wait for the loop)."""
        threading.Thread(target=self.shutdown, daemon=True).start()

    def notify(self, repositories: Iterable[str]) -> None:
        names = set(repositories)
        if names:
            self._queue.put(names)

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                names = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            deadline = time.monotonic() + _SETTLE
            while (left := deadline - time.monotonic()) > 0:
                with contextlib.suppress(queue.Empty):
                    names |= self._queue.get(timeout=left)
            self.on_rebuild(self.rebuild(names))

    def rebuild(self, repositories: set[str]) -> Rebuild:
        """Refresh `repositories` in the index and rebuild the pages that show them."""
        from ebpm.errors import EbpmError
        from ebpm.hub.crawl import refresh
        from ebpm.hub.index import HubIndex, hub_lock
        from ebpm.hub.site import build_site

        started = time.monotonic()
        names = tuple(sorted(repositories))
        try:
            with hub_lock("hub serve"):  # after a running `hub refresh`, from its index
                index = HubIndex.load()
                result = refresh(index, self.sources, repositories=names, access=self.access)
                failure = result.failure()
                if failure is not None and not result.refreshed:
                    raise failure  # no registry answered: nothing to save or rebuild
                index.save()
                site = build_site(index, self.site, only=set(names) | result.repositories)
        except EbpmError as err:
            return Rebuild(names, (), time.monotonic() - started, error=err.message)
        return Rebuild(names, tuple(site.written), time.monotonic() - started,
                       error=failure.message if failure is not None else "")


def _handler(server: HubServer) -> type[BaseHTTPRequestHandler]:
    root = server.site.resolve()
    registries = [s.registry for s in server.sources]

    class Handler(BaseHTTPRequestHandler):
        server_version = "ebpm-hub"
        sys_version = ""
        timeout = REQUEST_TIMEOUT  # a client that stalls mid-request loses its thread

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s %s", self.address_string(), format % args)

        def _send(self, status: int, body: bytes, content_type: str, *,
                  head: bool = False) -> None:
            self.send_response(status)
            for key, value in HEADERS.items():
                self.send_header(key, value)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _text(self, status: int, text: str) -> None:
            self._send(status, (text + "\n").encode(), "text/plain; charset=utf-8")

        def _file(self, head: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            target = (root / path.lstrip("/")).resolve()
            if target != root and root not in target.parents:
                self._text(HTTPStatus.NOT_FOUND, "not found")
                return
            if target.is_dir():
                if not path.endswith("/"):
                    self.send_response(HTTPStatus.MOVED_PERMANENTLY)
                    self.send_header("Location", path + "/")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                target = target / "index.html"
            try:
                body = target.read_bytes()
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                self._text(HTTPStatus.NOT_FOUND, "not found")
                return
            self._send(HTTPStatus.OK, body,
                       _TYPES.get(target.suffix, "application/octet-stream"), head=head)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._file(head=False)

        def do_HEAD(self) -> None:  # noqa: N802
            self._file(head=True)

        def do_POST(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            if url.path != EVENTS_PATH:
                self._text(HTTPStatus.NOT_FOUND, "not found")
                return
            given = self.headers.get("Authorization", "")
            wanted = f"Bearer {server.secret}"
            if not server.secret or not hmac.compare_digest(given.encode(), wanted.encode()):
                self._text(HTTPStatus.UNAUTHORIZED, "unauthorized")
                return
            length = self.headers.get("Content-Length", "")
            if not length.isdigit() or int(length) > MAX_EVENTS_BODY:
                self._text(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large or unsized")
                return
            try:
                envelope = json.loads(self.rfile.read(int(length)))
            except ValueError:
                self._text(HTTPStatus.BAD_REQUEST, "not JSON")
                return
            named = parse_qs(url.query).get("registry", [""])[0]
            server.notify(repositories_of(envelope, registries, registry=named))
            self._text(HTTPStatus.ACCEPTED, "accepted")

    return Handler
