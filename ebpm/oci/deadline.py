"""Deadlines for HTTP exchanges: a whole-exchange deadline and a minimum average rate, enforced
by one watchdog thread that shuts down the socket of an exchange that overstays.

A per-read timeout alone lets a server that drips one byte every few seconds hold a transfer
forever; the watchdog ends it. It never raises in the thread doing the transfer: it marks the
watch (`reason`) and shuts the socket down, so the blocked read returns, and the transport turns
the resulting connection error into a TimedOutError that says why.

Sockets are found through the connection classes installed by `install(session)`: they attach
the connection to the current thread's watch when a request is sent or its answer read, and
a connection that goes back to the pool ends its watch (its exchange is over).
"""

from __future__ import annotations

import threading
import time
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ebpm.limits import human_size

if TYPE_CHECKING:
    import requests

__all__ = ["Watch", "start", "current", "install", "watch_of"]

_TICK = 0.1  # seconds between the watchdog's checks
_lock = threading.Lock()
_active: set[Watch] = set()
_owners: dict[int, Watch] = {}  # id(connection) -> the watch of the exchange using it
_local = threading.local()
_thread: threading.Thread | None = None


class Watch:
    """One exchange's clock: bytes received (and sent), and why it was stopped, if it was."""

    def __init__(self, *, deadline: float, min_rate: int, grace: float, sent: int = 0) -> None:
        self.started = time.monotonic()
        self.deadline = deadline
        self.min_rate = max(0, min_rate)
        self.grace = grace
        self.sent = sent
        self.received = 0
        self.reason: str | None = None
        self._conn: Any = None
        self._sock: Any = None  # kept: http.client drops conn.sock when the answer will close

    def feed(self, n: int) -> None:
        self.received += n

    def check(self, now: float) -> str | None:
        """Why this exchange must stop now (None while it is within bounds)."""
        elapsed = now - self.started
        if elapsed > self.deadline:
            return (f"timed out: not finished after {self.deadline:g} s "
                    f"({human_size(self.received)} received; EBPM_TRANSFER_DEADLINE)")
        if self.min_rate and elapsed > self.grace:
            allowed = self.min_rate * (elapsed - self.grace)
            if self.received + self.sent < allowed:
                return (f"timed out: {human_size(self.received)} in {elapsed:.0f} s, slower "
                        f"than the minimum {human_size(self.min_rate)}/s (EBPM_MIN_RATE)")
        return None

    def _expire(self, reason: str) -> None:
        self.reason = reason
        sock = self._sock if self._conn is not None else None
        if sock is not None:
            import socket

            try:
                sock.shutdown(socket.SHUT_RDWR)  # the blocked read returns at once
            except OSError:
                pass

    def attach(self, conn: Any) -> None:
        with _lock:
            sock = getattr(conn, "sock", None)
            if sock is not None:
                self._sock = sock
            if self._conn is conn:
                return
            previous = _owners.get(id(conn))
            if previous is not None and previous is not self:
                previous._conn = previous._sock = None
            _owners[id(conn)] = self
            self._conn = conn

    def close(self) -> None:
        """The exchange is over: stop watching it."""
        with _lock:
            _active.discard(self)
            conn, self._conn, self._sock = self._conn, None, None
            if conn is not None and _owners.get(id(conn)) is self:
                del _owners[id(conn)]

    def __enter__(self) -> Watch:
        _local.watch = self
        return self

    def __exit__(self, *exc: object) -> None:
        _local.watch = None


def start(*, deadline: float, min_rate: int, grace: float, sent: int = 0) -> Watch:
    """A new watch, checked by the watchdog until it is closed (or its connection returns)."""
    global _thread
    watch = Watch(deadline=deadline, min_rate=min_rate, grace=grace, sent=sent)
    with _lock:
        _active.add(watch)
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_watchdog, name="ebpm-deadline", daemon=True)
            _thread.start()
    return watch


def current() -> Watch | None:
    return getattr(_local, "watch", None)


def watch_of(resp: requests.Response) -> Watch | None:
    """The watch of the exchange that produced `resp` (set by the transport)."""
    return getattr(resp, "_ebpm_watch", None)


def _release(conn: Any) -> None:
    with _lock:
        watch = _owners.pop(id(conn), None)
        if watch is not None:
            watch._conn = watch._sock = None
            _active.discard(watch)


def _watchdog() -> None:
    while True:
        time.sleep(_TICK)
        now = time.monotonic()
        with _lock:
            watches = list(_active)
        for watch in watches:
            reason = watch.check(now)
            if reason is not None:
                with _lock:
                    _active.discard(watch)
                watch._expire(reason)


@lru_cache(maxsize=1)
def _pool_classes() -> dict[str, type]:
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class Attaching:
        def send(self, data: Any) -> None:
            watch = current()
            if watch is not None:
                watch.attach(self)
            super().send(data)  # type: ignore[misc]

        def getresponse(self) -> Any:
            watch = current()
            if watch is not None:
                watch.attach(self)
            return super().getresponse()  # type: ignore[misc]

    class Releasing:
        def _put_conn(self, conn: Any) -> None:
            if conn is not None:
                _release(conn)
            super()._put_conn(conn)  # type: ignore[misc]

    class WatchedHTTPConnection(Attaching, HTTPConnection):
        pass

    class WatchedHTTPSConnection(Attaching, HTTPSConnection):
        pass

    class WatchedHTTPPool(Releasing, HTTPConnectionPool):
        ConnectionCls = WatchedHTTPConnection

    class WatchedHTTPSPool(Releasing, HTTPSConnectionPool):
        ConnectionCls = WatchedHTTPSConnection

    return {"http": WatchedHTTPPool, "https": WatchedHTTPSPool}


def install(session: requests.Session) -> None:
    """Make `session`'s connections report to the current thread's watch."""
    classes = _pool_classes()
    for prefix in ("http://", "https://"):
        adapter = session.get_adapter(prefix)
        manager = getattr(adapter, "poolmanager", None)
        if manager is not None:
            manager.pool_classes_by_scheme = dict(classes)
