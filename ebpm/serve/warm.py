"""The agent's warm cache: packages it ran recently stay opened, loaded and verified but
detached, so that starting one again only attaches it.

A session is kept under (package digest, the flags given, its explicit attach targets): the
same package with the same load-time values. Taking it attaches it again with every map
emptied and every global variable back to its value at load (`Session.reattach`), so a run
from the cache starts as fresh as a new load. The cache holds at most `size` sessions (the
least recently stopped go first, unloaded); `close()` unloads them all, and the agent calls it
when it stops, so nothing is left loaded behind it. Sessions with maps the reattach could not
empty (program arrays, map-in-maps, ...), pinned (persisted) programs and wasm guests are never
kept.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ebpm.run.native import Warm

if TYPE_CHECKING:
    from ebpm.loader.session import Session

__all__ = ["WarmCache"]

log = logging.getLogger("ebpm.serve")


class WarmCache(Warm):
    """At most `size` detached sessions, the most recently given last; thread-safe."""

    def __init__(self, size: int = 8) -> None:
        self.size = max(0, size)
        self._lock = threading.Lock()
        self._sessions: OrderedDict[tuple[Any, ...], Session] = OrderedDict()
        self._closed = False
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def take(self, key: tuple[Any, ...]) -> Session | None:
        with self._lock:
            session = self._sessions.pop(key, None)
            if session is None:
                self.misses += 1
            else:
                self.hits += 1
            return session

    def give(self, key: tuple[Any, ...], session: Session) -> bool:
        evicted: list[Session] = []
        with self._lock:
            if self._closed or self.size == 0 or key in self._sessions:
                return False
            session.detach()
            self._sessions[key] = session
            while len(self._sessions) > self.size:
                evicted.append(self._sessions.popitem(last=False)[1])
        for old in evicted:
            old.close()
        return True

    def close(self) -> None:
        """Unload every session kept; later ones are refused (the agent is stopping)."""
        with self._lock:
            self._closed = True
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for session in sessions:
            try:
                session.close()
            except Exception as err:  # one failure must not keep the others loaded
                log.warning("unload %s: %s", session.config.name, err)
