"""Helpers for the wasm tests: where guests come from, and acting once a guest is READY."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
GUESTS = HERE / "guests"
EXAMPLE = HERE.parents[1] / "examples" / "wasm-execsnoop"


@dataclass(frozen=True)
class Guests:
    """Wasm modules built this session from the example and tests/wasm/guests."""

    execsnoop: bytes
    trap: bytes
    spin: bytes
    forbidden: bytes
    maps: bytes
    tinygo: bytes
    perfbuf: bytes


@contextmanager
def when_ready(out: Path, action: Callable[[], None]) -> Iterator[None]:
    """Run `action` in a thread once the guest wrote READY to `out` (its stdout file).

    The thread waits for as long as the `with` body runs the guest (a slow compile on a busy
    machine only delays it); when the guest ended without the action having run, the test fails
    here saying so, rather than later on output that merely lacks the events.
    """
    ended = threading.Event()
    ran = threading.Event()

    def wait() -> None:
        while not ended.is_set():
            if out.exists() and b"READY" in out.read_bytes():
                action()
                ran.set()
                return
            ended.wait(0.01)

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    try:
        yield
    finally:
        ended.set()
        thread.join()
    if not ran.is_set():
        output = out.read_text() if out.exists() else "(none)"
        raise AssertionError(f"the guest ended before the test's action ran; its output: {output}")
