"""Event fan-out: one producer thread, any number of asyncio readers, each with its own buffer.

A program's poll thread calls `FanOut.publish(event)` (the agent publishes each event already
JSON-encoded, so it is encoded once however many readers stream it); every subscribed `Reader`
gets the event in its own bounded buffer. A reader whose buffer is full loses that event, and
only that reader counts it (`Reader.lost`): a slow client never stalls the producer or the
other readers. The fan-out also keeps the most recent events (`history`) for `ebpm logs`
without `-f`, and, once closed, how the program's run ended (`outcome`: the end record's).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Iterable
from typing import Any

__all__ = ["FanOut", "Reader", "DEFAULT_CAPACITY", "DEFAULT_HISTORY"]

DEFAULT_CAPACITY = 4096  # events a reader may fall behind before it loses events
DEFAULT_HISTORY = 1000  # recent events kept for `ebpm logs ID` without -f


class Reader:
    """One subscriber: events arrive in a bounded buffer; a full buffer counts a loss."""

    def __init__(self, fanout: FanOut, capacity: int, loop: asyncio.AbstractEventLoop) -> None:
        self._fanout = fanout
        self.capacity = capacity
        self._buf: deque[Any] = deque()
        self._loop = loop
        self._wake = asyncio.Event()
        self._waiting = False
        self.delivered = 0
        self.lost = 0
        self.closed = False

    def _offer(self, item: Any) -> None:
        """Called by the producer thread (holding the fan-out's lock)."""
        if len(self._buf) >= self.capacity:
            self.lost += 1
            return
        self._buf.append(item)
        if self._waiting:
            self._waiting = False
            self._wakeup()

    def _wakeup(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._wake.set)
        except RuntimeError:  # the reader's loop is gone: nobody is waiting any more
            pass

    def _close(self) -> None:
        self.closed = True
        self._wakeup()

    async def next_batch(self, timeout: float | None = None) -> list[Any]:
        """Everything buffered so far, waiting up to `timeout` seconds for at least one event.

        Returns [] on timeout; raises EOFError once the fan-out is closed and drained."""
        while True:
            if self._buf:
                batch = []
                buf = self._buf
                while buf:
                    batch.append(buf.popleft())
                self.delivered += len(batch)
                return batch
            if self.closed:
                raise EOFError
            self._wake.clear()
            self._waiting = True
            if self._buf or self.closed:  # arrived between the check and the flag
                self._waiting = False
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                self._waiting = False
                return []

    def close(self) -> None:
        """Unsubscribe (a client went away)."""
        self._fanout._remove(self)
        self.closed = True


class FanOut:
    """Delivers each published event to every current reader; counts what it published."""

    def __init__(self, *, history: int = DEFAULT_HISTORY) -> None:
        self._lock = threading.Lock()
        self._readers: list[Reader] = []
        self.history: deque[Any] = deque(maxlen=history)
        self.published = 0
        self.closed = False
        self.lost_by_closed_readers = 0  # loss of readers that already left, for the totals
        # how the run ended, for the streams' end records ({"status": "exited", ...}); empty
        # when the streams end for another reason (the agent exits)
        self.outcome: dict[str, Any] = {}

    def subscribe(
        self, *, capacity: int = 4096, replay: Iterable[Any] = (),
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> Reader:
        """A new reader (call from the event loop); `replay` events are queued first."""
        reader = Reader(self, capacity, loop or asyncio.get_running_loop())
        with self._lock:
            for item in replay:
                reader._offer(item)
            if self.closed:
                reader.closed = True
            else:
                self._readers.append(reader)
        return reader

    def recent(self, count: int | None = None) -> list[Any]:
        with self._lock:
            items = list(self.history)
        return items if count is None else items[-count:] if count > 0 else []

    def publish(self, item: Any) -> None:
        """Hand `item` to every reader (any thread); never blocks on a reader."""
        with self._lock:
            self.published += 1
            self.history.append(item)
            for reader in self._readers:
                reader._offer(item)

    def publish_many(self, items: list[Any]) -> None:
        with self._lock:
            self.published += len(items)
            self.history.extend(items)
            for reader in self._readers:
                for item in items:
                    reader._offer(item)

    @property
    def readers(self) -> int:
        return len(self._readers)

    @property
    def lost(self) -> int:
        """Events lost by readers, current and past."""
        with self._lock:
            return self.lost_by_closed_readers + sum(r.lost for r in self._readers)

    def reader_stats(self) -> list[tuple[int, int]]:
        """(delivered, lost) of each current reader."""
        with self._lock:
            return [(r.delivered, r.lost) for r in self._readers]

    def _remove(self, reader: Reader) -> None:
        with self._lock:
            if reader in self._readers:
                self._readers.remove(reader)
                self.lost_by_closed_readers += reader.lost

    def reopen(self) -> None:
        """Take readers again after a close (a hot swap onto a program whose run ended)."""
        with self._lock:
            self.closed = False
            self.outcome = {}

    def close(self, outcome: dict[str, Any] | None = None) -> None:
        """End every reader's stream once it has drained its buffer; `outcome` says how the
        run ended (the first close's is kept)."""
        with self._lock:
            if not self.closed and outcome:
                self.outcome = dict(outcome)
            self.closed = True
            readers, self._readers = self._readers, []
            for r in readers:
                self.lost_by_closed_readers += r.lost
        for r in readers:
            r._close()
