"""A run's stop request that also wakes its poll: `Stop`, given as `stop=` to `run_object`.

A `threading.Event` is noticed by a run between two polls, each of which waits up to 100 ms
for events (`ebpm.run.native`). A `Stop` is such an event with an eventfd that becomes
readable when it is set: the run waits on that fd beside its buffers, so that `set()` ends
the wait at once (the agent's DELETE no longer waits out a poll). A run given none waits on an
eventfd of its own, which its signal handler writes (`SignalStop.wake_fds`: a handler takes no
lock), and imports neither this module nor threading.
"""

from __future__ import annotations

import os
import threading

__all__ = ["Stop"]


class Stop(threading.Event):
    """A threading.Event whose `fileno()`, an eventfd, is readable once it is set, for the
    run's poll. `close()` (by the run, when it no longer polls) closes the fd; a `set()`
    afterwards only sets the flag, never writes to a number the fd had."""

    def __init__(self) -> None:
        super().__init__()
        self._fd_lock = threading.Lock()
        self._fd: int | None = None
        self._closed = False

    def set(self) -> None:
        with self._fd_lock:
            super().set()
            if self._fd is not None:
                os.eventfd_write(self._fd, 1)

    def fileno(self) -> int | None:
        """The eventfd (made on first use, readable if already set); None once closed."""
        with self._fd_lock:
            if self._fd is None and not self._closed:
                self._fd = os.eventfd(1 if self.is_set() else 0,
                                      os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            return self._fd

    def close(self) -> None:
        with self._fd_lock:
            self._closed = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
