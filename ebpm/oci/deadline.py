"""Deadlines for HTTP exchanges without a watchdog thread: one monotonic clock per exchange, and
every blocking socket operation given only the time the exchange has left.

An exchange must finish within EBPM_TRANSFER_DEADLINE and, once its grace period is over,
average at least EBPM_MIN_RATE. A per-read timeout alone would let a server that drips one byte
every few seconds hold a transfer forever; here each connect, send and recv gets as its timeout
the least of: the per-read timeout, the time to the deadline, and the time until the bytes
moved so far fall below the minimum rate. A server that drips is cut when its rate falls short,
a slow honest one only when the whole deadline is spent. The operation that runs out raises
TimeoutError with `clock.reason` set, which the transport turns into a TimedOutError that says
why. Costs nothing when nobody misbehaves: no thread, no lock, one clock read per recv.
"""

from __future__ import annotations

import socket
import time

from ebpm.limits import human_size

__all__ = ["Clock"]


class Clock:
    """One exchange's bounds and progress: bytes received (and sent), and why it was stopped."""

    def __init__(self, *, deadline: float, min_rate: int, grace: float, timeout: float,
                 sent: int = 0) -> None:
        self.started = time.monotonic()
        self.deadline = deadline
        self.min_rate = max(0, min_rate)
        self.grace = grace
        self.timeout = timeout  # the most one socket operation may wait
        self.sent = sent
        self.received = 0
        self.reason: str | None = None

    def feed(self, n: int) -> None:
        self.received += n

    def check(self, now: float) -> str | None:
        """Why this exchange must stop at `now` (None while it is within bounds)."""
        elapsed = now - self.started
        if elapsed >= self.deadline:
            return (f"timed out: not finished after {self.deadline:g} s "
                    f"({human_size(self.received)} received; EBPM_TRANSFER_DEADLINE)")
        if self.min_rate and elapsed > self.grace:
            allowed = self.min_rate * (elapsed - self.grace)
            if self.received + self.sent < allowed:
                return (f"timed out: {human_size(self.received)} in {elapsed:.0f} s, slower "
                        f"than the minimum {human_size(self.min_rate)}/s (EBPM_MIN_RATE)")
        return None

    def budget(self) -> float:
        """Seconds the next socket operation may block; raises TimeoutError (with `reason`
        set) when the exchange has none left."""
        now = time.monotonic()
        left = min(self.timeout, self.started + self.deadline - now)
        if self.min_rate:
            behind = self.started + self.grace + (self.received + self.sent) / self.min_rate
            left = min(left, behind - now)
        if left <= 0:
            self.expire(max(now, now - left))
            raise TimeoutError(self.reason)
        return left

    def expire(self, now: float) -> None:
        """Record why the exchange stops (after an operation timed out at `now`)."""
        if self.reason is None:
            self.reason = self.check(now + 1e-3)

    def settle(self, sock: socket.socket) -> None:
        """Give `sock` the time left (before a send or a connect)."""
        sock.settimeout(self.budget())
